"""The store registry in SQLite."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import msgspec

from cartrecover.errors import StoreExists
from cartrecover.ports.stores import Store

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Store)


class SqliteStores:
    """Stores with their keys; the admin key is kept only as a hash."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, store: Store) -> Store:
        """Insert a store and assign its id."""
        try:
            cur = self._conn.execute(
                "INSERT INTO stores (name, write_key, admin_key_hash, body) VALUES (?,?,?,x'')",
                (store.name, store.write_key, store.admin_key_hash),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreExists(f"a store named {store.name!r} (or with the same key) exists") from exc
        saved = replace(store, store_id=int(cur.lastrowid or 0))
        self.update(saved)
        return saved

    def update(self, store: Store) -> None:
        """Replace keys and settings."""
        self._conn.execute(
            "UPDATE stores SET name=?, write_key=?, admin_key_hash=?, body=? WHERE store_id=?",
            (store.name, store.write_key, store.admin_key_hash, _encoder.encode(store), store.store_id),
        )

    def by_name(self, name: str) -> Store | None:
        """The store with this name."""
        row = self._conn.execute("SELECT body FROM stores WHERE name=?", (name,)).fetchone()
        return _decoder.decode(row[0]) if row else None

    def all(self) -> list[Store]:
        """Every store by id."""
        return [_decoder.decode(body) for (body,) in self._conn.execute("SELECT body FROM stores ORDER BY store_id")]
