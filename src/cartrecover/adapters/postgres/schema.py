"""The state store's schema on PostgreSQL: the numbered files in `migrations/`, applied by `cartrecover migrate`.

Unlike SQLite, a PostgreSQL store is never migrated by opening it: it is shared by processes on several
machines, so upgrading its schema is the operator's step of a deploy (`cartrecover migrate` once, then the
new processes). A process that finds the schema behind the code refuses to start and says to run it, rather
than taking exclusive locks on live tables from every worker that starts, or running against a schema it
does not know. Migrations take an advisory lock, so two `migrate` runs at once apply each one once.

The tables live in the first schema of the connection's `search_path`: pick one with the URL,
`postgresql://…/db?options=-csearch_path%3Dcartrecover` (it must exist; `CREATE SCHEMA cartrecover`).
A migration that needs what SQL cannot read (a value inside a stored msgpack body) has a Python step in `STEPS`,
run just before its SQL in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cache

import psycopg

from cartrecover.adapters.migrations import Migrated, Migration, behind_message, packaged, pending
from cartrecover.adapters.postgres.carts import add_abandoned
from cartrecover.adapters.postgres.connections import Conn
from cartrecover.errors import StoreError

# Python steps of migrations, by the migration's name: run just before its SQL, in its transaction.
STEPS: Mapping[str, Callable[[Conn], None]] = {"0003_carts_by_abandonment": add_abandoned}

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)"
)


@cache
def migrations() -> tuple[Migration, ...]:
    """The PostgreSQL state store's migrations, by version."""
    return packaged("cartrecover.adapters.postgres")


def migrate(conn: Conn, where: str, known: tuple[Migration, ...] | None = None) -> Migrated:
    """Apply the pending migrations, each in one transaction with the row that records it."""
    known = migrations() if known is None else known
    lock = f"cartrecover migrate {_schema(conn, where)}"
    done = []
    try:
        while (applied := _apply_next(conn, lock, known, where)) is not None:
            done.append(applied.name)
        version = max(_applied(conn), default=0)
    except psycopg.Error as exc:
        raise StoreError(f"{where}: migration failed: {exc}") from exc
    return Migrated(tuple(done), version)


def _apply_next(conn: Conn, lock: str, known: tuple[Migration, ...], where: str) -> Migration | None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
        conn.execute(_TABLE)
        todo = pending(known, _applied(conn), where)
        if todo:
            if step := STEPS.get(todo[0].name):
                step(conn)
            conn.execute(todo[0].sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_us) VALUES (%s, %s, %s)",
                (todo[0].version, todo[0].name, time.time_ns() // 1000),
            )
    return todo[0] if todo else None


def check(conn: Conn, where: str, known: tuple[Migration, ...] | None = None) -> int:
    """The schema's version; StoreError if it is behind the code (run `cartrecover migrate`) or ahead of it."""
    known = migrations() if known is None else known
    try:
        (exists,) = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone() or (False,)
        applied = _applied(conn) if exists else set()
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the schema version of {where}: {exc}") from exc
    if pending(known, applied, where):
        raise StoreError(behind_message(where, max(applied, default=0), len(known)))
    return max(applied, default=0)


def _applied(conn: Conn) -> set[int]:
    return {int(version) for (version,) in conn.execute("SELECT version FROM schema_migrations")}


def _schema(conn: Conn, where: str) -> str:
    try:
        schema, path = conn.execute("SELECT current_schema(), current_setting('search_path')").fetchone() or ("", "")
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the search_path of {where}: {exc}") from exc
    if schema is None:
        raise StoreError(
            f"{where}: no schema of the search_path ({path}) exists: create it (CREATE SCHEMA …) or change the "
            "URL's options=-csearch_path%3D…"
        )
    return str(schema)
