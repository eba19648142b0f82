"""Identity resolution in PostgreSQL: identities point to shoppers; merges repoint them."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from cartrecover.adapters.postgres.connections import Conn
from cartrecover.ports.shoppers import Shopper

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Shopper)
_NEXT_SEQ = "(SELECT coalesce(max(created_seq),0)+1 FROM shoppers WHERE store_id=%s)"


class PostgresShoppers:
    """Shoppers and their identities; in a write transaction a profile read stays locked until it ends."""

    def __init__(self, conn: Conn, lock: str) -> None:
        self._conn, self._lock = conn, lock

    def resolve(self, store_id: int, identities: Sequence[tuple[str, str]], new_id: str) -> tuple[str, list[str]]:
        """Find or create the shopper for these identities, merging shoppers they disagree on."""
        found: list[str] = []
        for kind, value in identities:
            owner = self.find(store_id, kind, value)
            if owner is not None and owner not in found:
                found.append(owner)
        if not found:
            survivor, merged = new_id, list[str]()
            self._conn.execute(
                f"INSERT INTO shoppers (store_id, shopper_id, created_seq, body) VALUES (%s,%s,{_NEXT_SEQ},%s)",
                (store_id, new_id, store_id, _encoder.encode(Shopper(store_id=store_id, shopper_id=new_id))),
            )
        else:
            survivor = self._oldest(store_id, found)
            merged = [s for s in found if s != survivor]
            for old in merged:
                self._merge(store_id, old, survivor)
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO identities (store_id, kind, value, shopper_id) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (store_id, kind, value) DO UPDATE SET shopper_id=excluded.shopper_id",
                [(store_id, kind, value, survivor) for kind, value in identities],
            )
        return survivor, merged

    def _oldest(self, store_id: int, shopper_ids: list[str]) -> str:
        row = self._conn.execute(
            "SELECT shopper_id FROM shoppers WHERE store_id=%s AND shopper_id = ANY(%s) ORDER BY created_seq LIMIT 1",
            (store_id, shopper_ids),
        ).fetchone()
        return str(row[0]) if row else shopper_ids[0]

    def _merge(self, store_id: int, old: str, survivor: str) -> None:
        gone, kept = self.get(store_id, old), self.get(store_id, survivor)
        if gone and kept:
            kept.email = kept.email or gone.email
            kept.phone = kept.phone or gone.phone
            kept.timezone = kept.timezone or gone.timezone
            kept.consent = {**gone.consent, **kept.consent}
            kept.traits = {**gone.traits, **kept.traits}
            kept.group = kept.group or gone.group  # the surviving (oldest) shopper's group wins
            kept.experiments = {**gone.experiments, **kept.experiments}  # and so do its variants
            self.save(kept)
        self._conn.execute(
            "UPDATE identities SET shopper_id=%s WHERE store_id=%s AND shopper_id=%s", (survivor, store_id, old)
        )
        self._conn.execute("DELETE FROM shoppers WHERE store_id=%s AND shopper_id=%s", (store_id, old))

    def get(self, store_id: int, shopper_id: str) -> Shopper | None:
        """The profile, or None."""
        row = self._conn.execute(
            f"SELECT body FROM shoppers WHERE store_id=%s AND shopper_id=%s{self._lock}", (store_id, shopper_id)
        ).fetchone()
        return _decoder.decode(row[0]) if row else None

    def save(self, shopper: Shopper) -> None:
        """Update (or create) the profile."""
        self._conn.execute(
            f"INSERT INTO shoppers (store_id, shopper_id, created_seq, body) VALUES (%s,%s,{_NEXT_SEQ},%s) "
            "ON CONFLICT (store_id, shopper_id) DO UPDATE SET body=excluded.body",
            (shopper.store_id, shopper.shopper_id, shopper.store_id, _encoder.encode(shopper)),
        )

    def all(self, store_id: int) -> list[Shopper]:
        """Every profile of the store, oldest first."""
        rows = self._conn.execute("SELECT body FROM shoppers WHERE store_id=%s ORDER BY created_seq", (store_id,))
        return [_decoder.decode(body) for (body,) in rows]

    def erase(self, store_id: int, shopper_id: str) -> list[tuple[str, str]]:
        """Delete the profile and its identities; return the identities deleted."""
        linked = self._conn.execute(
            "DELETE FROM identities WHERE store_id=%s AND shopper_id=%s RETURNING kind, value", (store_id, shopper_id)
        ).fetchall()
        self._conn.execute("DELETE FROM shoppers WHERE store_id=%s AND shopper_id=%s", (store_id, shopper_id))
        return [(str(kind), str(value)) for kind, value in linked]

    def find(self, store_id: int, kind: str, value: str) -> str | None:
        """The shopper an identity points to."""
        row = self._conn.execute(
            "SELECT shopper_id FROM identities WHERE store_id=%s AND kind=%s AND value=%s", (store_id, kind, value)
        ).fetchone()
        return str(row[0]) if row else None
