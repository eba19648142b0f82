"""The state file's schema: the numbered files in `migrations/`, applied when the file is opened.

SQLite applies pending migrations itself on open (and `cartrecover migrate` does the same, printing them):
the embedded store is one file on one machine, so upgrading is one step fewer and every data directory made
before migrations existed keeps working. `0001_initial.sql` is the schema such directories already have (it
only creates what is missing), so they are recorded at version 1 without a change. `BEGIN IMMEDIATE` takes the
file's write lock first, so the API process and the worker opening the file at once apply each migration once.
A migration that needs what SQL cannot read (a value inside a stored msgpack body) has a Python step in `STEPS`,
run just before its SQL in the same transaction; so does one that adds a column, which SQLite cannot add "if not
exists" to a file whose migrations are run again (a data directory from before they were recorded).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from functools import cache

from cartrecover.adapters.migrations import Migrated, Migration, packaged, pending
from cartrecover.adapters.sqlite.carts import add_abandoned
from cartrecover.adapters.sqlite.decisions import add_trial_share
from cartrecover.errors import StoreError

# Python steps of migrations, by the migration's name: run just before its SQL, in its transaction.
STEPS: Mapping[str, Callable[[sqlite3.Connection], None]] = {
    "0003_carts_by_abandonment": add_abandoned,
    "0004_model_trials": add_trial_share,
}

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us INTEGER NOT NULL)"
)


@cache
def migrations() -> tuple[Migration, ...]:
    """The SQLite state store's migrations, by version."""
    return packaged("cartrecover.adapters.sqlite")


def migrate(conn: sqlite3.Connection, where: str, known: tuple[Migration, ...] | None = None) -> Migrated:
    """Apply the pending migrations in one transaction (all or none); `known` defaults to the packaged ones.

    A migration must not need to run outside a transaction (VACUUM, `PRAGMA journal_mode`).
    """
    known = migrations() if known is None else known
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot lock {where} to migrate it: {exc}") from exc
    name = ""
    try:
        conn.execute(_TABLE)
        applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        todo = pending(known, applied, where)
        for migration in todo:
            name = migration.name
            if step := STEPS.get(migration.name):
                step(conn)
            for statement in statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time_ns() // 1000),
            )
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{where}: migration {name or 'bookkeeping'} failed: {exc}") from exc
        raise
    return Migrated(tuple(m.name for m in todo), max(applied | {m.version for m in todo}, default=0))


def statements(script: str) -> list[str]:
    """The script's statements one by one (`executescript` would commit the transaction they belong in)."""
    found, start = [], 0
    for end, char in enumerate(script, 1):
        if char == ";" and sqlite3.complete_statement(script[start:end]):
            found.append(script[start:end].strip())
            start = end
    rest = [line for line in script[start:].splitlines() if line.strip() and not line.lstrip().startswith("--")]
    if rest:
        raise ValueError(f"a statement without its closing semicolon: {rest[0]!r}")
    return found
