"""Versioned schema migrations on SQLite and PostgreSQL: applied once, in order, all or nothing, by
`cartrecover migrate`; SQLite applies them itself on open, PostgreSQL refuses to open a schema that is behind."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from cartrecover.adapters.migrations import Migrated, Migration
from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.adapters.postgres import schema as postgres_schema_module
from cartrecover.adapters.sqlite import SqliteDatabase
from cartrecover.adapters.sqlite import schema as sqlite_schema_module
from cartrecover.adapters.sqlite.schema import statements
from cartrecover.domain.cart import CartStatus
from cartrecover.entrypoints.cli import main
from cartrecover.errors import StoreError
from cartrecover.ports.stores import Store
from tests.conftest import START
from tests.factories import cart
from tests.services import postgres_schema


@contextmanager
def sqlite_url(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'data' / 'cartrecover.db'}"


# Where a state store lives, as a URL, for as long as the context lasts (a file, or a schema of its own).
STORES: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
    "sqlite": sqlite_url,
    "postgres": lambda tmp: postgres_schema(),
}
DATABASES: dict[str, Any] = {"sqlite": SqliteDatabase, "postgres": PostgresDatabase}


@pytest.fixture(params=sorted(STORES))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend name, URL of an empty store)."""
    with STORES[request.param](tmp_path) as url:
        yield request.param, url


class Tables:
    """What a store's schema holds, read with the backend's own driver."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as conn:
                return conn.execute(sql).fetchall()
        with psycopg.connect(self.url) as pg:
            return pg.execute(sql.encode()).fetchall()

    def recorded(self) -> list[tuple[int, str]]:
        return [(int(v), str(n)) for v, n in self.query("SELECT version, name FROM schema_migrations ORDER BY 1")]

    def columns(self, table: str) -> set[str]:
        if self.name == "sqlite":
            return {row[1] for row in self.query(f"PRAGMA table_info({table})")}
        rows = self.query(f"SELECT column_name FROM information_schema.columns WHERE table_name='{table}'")
        return {row[0] for row in rows}


def apply(name: str, url: str, known: tuple[Migration, ...]) -> Migrated:
    """Run the backend's migrator with these migrations instead of the packaged ones."""
    if name == "sqlite":
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)) as conn:
            return sqlite_schema_module.migrate(conn, url, known)
    with psycopg.connect(url, autocommit=True) as pg:
        return postgres_schema_module.migrate(pg, url, known)


def packaged(name: str) -> tuple[Migration, ...]:
    return sqlite_schema_module.migrations() if name == "sqlite" else postgres_schema_module.migrations()


NOTE = "ALTER TABLE stores ADD COLUMN note TEXT;\nCREATE INDEX stores_by_note ON stores (note);"


def test_a_fresh_store_is_migrated_to_the_latest_version_and_migrating_again_does_nothing(
    backend: tuple[str, str],
) -> None:
    name, url = backend
    latest = len(packaged(name))

    first = DATABASES[name].migrate(url)
    again = DATABASES[name].migrate(url)

    assert first == Migrated(tuple(m.name for m in packaged(name)), latest)
    assert again == Migrated((), latest)
    tables = Tables(name, url)
    assert tables.recorded() == [(m.version, m.name) for m in packaged(name)]
    assert {"store_id", "name", "write_key", "body"} <= tables.columns("stores")
    with closing(DATABASES[name].from_url(url)) as db, db.write() as uow:
        uow.stores.add(Store(0, "shop", "wk", "ak"))


def test_a_new_migration_is_applied_once_after_the_ones_before(backend: tuple[str, str]) -> None:
    name, url = backend
    DATABASES[name].migrate(url)
    newer = (*packaged(name), Migration(len(packaged(name)) + 1, "0099_store_notes", NOTE))

    applied = apply(name, url, newer)
    again = apply(name, url, newer)  # ALTER TABLE … ADD COLUMN twice would fail

    assert applied == Migrated(("0099_store_notes",), len(newer))
    assert again == Migrated((), len(newer))
    assert "note" in Tables(name, url).columns("stores")
    with pytest.raises(StoreError, match="newer than this cartrecover"):
        apply(name, url, packaged(name))


def test_a_migration_that_fails_leaves_the_schema_as_it_was(backend: tuple[str, str]) -> None:
    name, url = backend
    DATABASES[name].migrate(url)
    broken = Migration(len(packaged(name)) + 1, "0099_broken", NOTE + "\nSELECT * FROM no_such_table;")

    with pytest.raises(StoreError, match="no_such_table"):
        apply(name, url, (*packaged(name), broken))

    tables = Tables(name, url)
    assert "note" not in tables.columns("stores")
    assert [v for v, _ in tables.recorded()] == [m.version for m in packaged(name)]


def test_migrate_prints_what_it_applied(backend: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    name, url = backend
    monkeypatch.setenv("CARTRECOVER_DATABASE_URL", url)

    assert main(["migrate", "--data-dir", str(Path(url.removeprefix("sqlite:///")).parent)]) == 0
    assert main(["migrate"]) == 0

    latest = len(packaged(name))
    assert capsys.readouterr().out.splitlines() == [
        *(f"applied {m.name}" for m in packaged(name)),
        f"the state store is at schema version {latest}",
        f"the state store is at schema version {latest}: up to date",
    ]


def test_carts_stored_before_their_abandonment_time_was_a_column_are_found_by_it_after_migrating(
    backend: tuple[str, str],
) -> None:
    name, url = backend
    if name == "sqlite":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    apply(name, url, packaged(name)[:2])  # a store as it was before the abandonment column
    minute = timedelta(minutes=1)
    abandoned = [
        cart(store_id=7, status=CartStatus.ABANDONED, abandoned_at=START + n * minute) for n in range(1500)
    ]  # more than a page of the migration's step
    active = cart(store_id=7)
    insert = "INSERT INTO carts (store_id, cart_id, shopper_id, status, last_activity_us, body) VALUES "
    rows = [
        (c.store_id, c.cart_id, c.shopper_id, c.status.value, 0, msgspec.msgpack.encode(c))
        for c in (*abandoned, active)
    ]
    insert_rows(name, url, insert, rows)

    assert DATABASES[name].migrate(url).applied[0] == "0003_carts_by_abandonment"

    with closing(DATABASES[name].from_url(url)) as db, db.read() as uow:
        assert uow.carts.abandoned_between(7, START, START + 2000 * minute) == abandoned
        assert uow.carts.abandoned_between(7, START + minute, START + 3 * minute) == abandoned[1:3]


def test_models_stored_before_trials_existed_keep_their_versions_and_none_is_on_trial(
    backend: tuple[str, str],
) -> None:
    name, url = backend
    if name == "sqlite":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    apply(name, url, packaged(name)[:3])  # a store as it was before the trial column
    rows = [(7, 1, 0, True, "{}", b"one"), (7, 2, 1, False, '{"auc": 0.8}', b"two")]
    insert = "INSERT INTO models (store_id, version, trained_us, active, metrics, body) VALUES "
    insert_rows(name, url, insert, rows)

    assert DATABASES[name].migrate(url).applied == ("0004_model_trials",)

    with closing(DATABASES[name].from_url(url)) as db:
        with db.read() as uow:
            assert [(v.version, v.active, v.metrics, v.trial_share) for v in uow.models.versions(7)] == [
                (2, False, {"auc": 0.8}, None),
                (1, True, {}, None),
            ]
            assert uow.models.active(7) == (1, b"one") and uow.models.trial(7) is None
        with db.write() as uow:
            assert uow.models.start_trial(7, 2, 0.5) is True
        with db.read() as uow:
            assert uow.models.trial(7) == (2, 0.5)


# --- SQLite: migrated on open, old data directories included ------------------------------------------------


def test_a_data_dir_from_before_migrations_keeps_its_data_and_is_recorded_at_version_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cartrecover.db'}"
    # A data directory made before migrations existed: the schema (then state.sql) and data, no bookkeeping.
    with closing(SqliteDatabase.from_url(url)) as old, old.write() as uow:
        store = uow.stores.add(Store(0, "old-shop", "wk", "ak"))
    with closing(sqlite3.connect(tmp_path / "cartrecover.db")) as conn:
        conn.execute("DROP TABLE schema_migrations")

    with closing(SqliteDatabase.from_url(url)) as reopened, reopened.read() as uow:
        assert uow.stores.all() == [store]
    assert Tables("sqlite", url).recorded()[0] == (1, "0001_initial")


def test_opening_a_sqlite_file_applies_its_pending_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cartrecover.db'}"
    SqliteDatabase.migrate(url)
    newer = (*packaged("sqlite"), Migration(len(packaged("sqlite")) + 1, "0099_store_notes", NOTE))
    monkeypatch.setattr(sqlite_schema_module, "migrations", lambda: newer)

    with closing(SqliteDatabase.from_url(url)):
        pass

    assert Tables("sqlite", url).recorded()[-1] == (len(newer), "0099_store_notes")


def test_a_script_splits_into_its_statements_whatever_their_layout() -> None:
    script = """-- a comment; with a semicolon
CREATE TABLE a (x TEXT DEFAULT 'a;b'); CREATE TABLE b (y INT);
CREATE TRIGGER t AFTER INSERT ON a BEGIN
    INSERT INTO b VALUES (1);
END;
-- trailing comment
"""
    found = statements(script)

    assert len(found) == 3
    assert found[0].startswith("-- a comment") and found[0].endswith("DEFAULT 'a;b');")
    assert found[1] == "CREATE TABLE b (y INT);"
    assert found[2].startswith("CREATE TRIGGER") and found[2].endswith("END;")
    with closing(sqlite3.connect(":memory:")) as conn:
        for statement in found:
            conn.execute(statement)
        conn.execute("INSERT INTO a VALUES ('x')")
        assert conn.execute("SELECT y FROM b").fetchall() == [(1,)]
    with pytest.raises(ValueError, match="semicolon"):
        statements("CREATE TABLE c (z INT)")


# --- PostgreSQL: migrated by the operator, never on open ---------------------------------------------------


def test_postgres_refuses_to_open_a_schema_that_is_behind_and_says_to_run_migrate() -> None:
    with postgres_schema() as url:
        with pytest.raises(StoreError, match="run `cartrecover migrate`"):
            PostgresDatabase.from_url(url)
        assert Tables("postgres", url).query("SELECT to_regclass('stores')") == [(None,)]


def test_two_migrates_at_once_on_postgres_apply_each_migration_once() -> None:
    with postgres_schema() as url, ThreadPoolExecutor(2) as pool:
        runs = [f.result(timeout=60) for f in [pool.submit(PostgresDatabase.migrate, url) for _ in range(2)]]
        recorded = Tables("postgres", url).recorded()

    # Each migration is applied by one of them (which one may differ from migration to migration).
    assert sorted(name for run in runs for name in run.applied) == [m.name for m in packaged("postgres")]
    assert recorded == [(m.version, m.name) for m in packaged("postgres")]


def test_postgres_says_which_schema_is_missing() -> None:
    with postgres_schema() as url:
        missing = url.replace("search_path%3Dtest_", "search_path%3Dmissing_")
        with pytest.raises(StoreError, match="CREATE SCHEMA"):
            PostgresDatabase.migrate(missing)


def insert_rows(name: str, url: str, insert: str, rows: list[tuple[object, ...]]) -> None:
    """Rows of six columns straight into a table (`insert` up to VALUES), as an older version had stored them."""
    if name == "sqlite":
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
            conn.executemany(insert + "(?,?,?,?,?,?)", rows)
    else:
        with psycopg.connect(url) as pg, pg.cursor() as cursor:
            cursor.executemany(insert + "(%s,%s,%s,%s,%s,%s)", rows)
