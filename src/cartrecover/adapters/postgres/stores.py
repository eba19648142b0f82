"""The store registry in PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import msgspec

from cartrecover.adapters.postgres.connections import Conn
from cartrecover.errors import StoreExists
from cartrecover.ports.stores import Store

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Store)


class PostgresStores:
    """Stores with their keys; the admin key is kept only as a hash."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def add(self, store: Store) -> Store:
        """Insert a store and assign its id."""
        # ON CONFLICT DO NOTHING rather than catching the unique violation: an error would abort the transaction.
        row = self._conn.execute(
            "INSERT INTO stores (name, write_key, admin_key_hash, body) VALUES (%s,%s,%s,'') "
            "ON CONFLICT DO NOTHING RETURNING store_id",
            (store.name, store.write_key, store.admin_key_hash),
        ).fetchone()
        if row is None:
            raise StoreExists(f"a store named {store.name!r} (or with the same key) exists")
        saved = replace(store, store_id=int(row[0]))
        self.update(saved)
        return saved

    def update(self, store: Store) -> None:
        """Replace keys and settings."""
        self._conn.execute(
            "UPDATE stores SET name=%s, write_key=%s, admin_key_hash=%s, body=%s WHERE store_id=%s",
            (store.name, store.write_key, store.admin_key_hash, _encoder.encode(store), store.store_id),
        )

    def by_name(self, name: str) -> Store | None:
        """The store with this name."""
        row = self._conn.execute("SELECT body FROM stores WHERE name=%s", (name,)).fetchone()
        return _decoder.decode(row[0]) if row else None

    def all(self) -> list[Store]:
        """Every store by id."""
        rows = self._conn.execute("SELECT body FROM stores ORDER BY store_id")
        return [_decoder.decode(body) for (body,) in rows]
