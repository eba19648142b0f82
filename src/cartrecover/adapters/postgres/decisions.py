"""The decision log and the model registry in PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec

from cartrecover.adapters._time import from_us, to_us
from cartrecover.adapters.postgres.connections import Conn
from cartrecover.ports.decisions import DecisionRecord, ModelVersion

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(DecisionRecord)


class PostgresDecisions:
    """Decisions, by store and time (for training) and by cart (for its timeline)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def add(self, record: DecisionRecord) -> None:
        """Log a decision."""
        self._conn.execute(
            "INSERT INTO decisions (store_id, cart_id, at_us, incentive, body) VALUES (%s, %s, %s, %s, %s)",
            (record.store_id, record.cart_id, to_us(record.at), record.incentive, _encoder.encode(record)),
        )

    def between(self, store_id: int, since: datetime, until: datetime) -> list[DecisionRecord]:
        """Decisions taken in [since, until), oldest first (in logging order among equal times)."""
        rows = self._conn.execute(
            "SELECT body FROM decisions WHERE store_id=%s AND at_us>=%s AND at_us<%s ORDER BY at_us, id",
            (store_id, to_us(since), to_us(until)),
        )
        return [_decoder.decode(body) for (body,) in rows]

    def for_cart(self, store_id: int, cart_id: str) -> list[DecisionRecord]:
        """A cart's decisions, oldest first."""
        rows = self._conn.execute(
            "SELECT body FROM decisions WHERE store_id=%s AND cart_id=%s ORDER BY at_us, id", (store_id, cart_id)
        )
        return [_decoder.decode(body) for (body,) in rows]

    def incentive_committed(self, store_id: int, since: datetime) -> float:
        """The expected incentive cost of the decisions since `since`."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(incentive), 0) FROM decisions WHERE store_id=%s AND at_us>=%s",
            (store_id, to_us(since)),
        ).fetchone()
        return float(row[0]) if row else 0.0


class PostgresModels:
    """Trained bundles per store, numbered; one active."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def add(self, store_id: int, trained_at: datetime, metrics: dict[str, Any], body: bytes, activate: bool) -> int:
        """Store a bundle as the store's next version."""
        row = self._conn.execute(
            "INSERT INTO models (store_id, version, trained_us, active, metrics, body) "
            "SELECT %s, COALESCE(MAX(version), 0) + 1, %s, false, %s, %s FROM models WHERE store_id=%s "
            "RETURNING version",
            (store_id, to_us(trained_at), json.dumps(metrics, sort_keys=True), body, store_id),
        ).fetchone()
        assert row is not None, "INSERT … RETURNING returns the row it inserted"
        version = int(row[0])
        if activate:
            self.activate(store_id, version)
        return version

    def active(self, store_id: int) -> tuple[int, bytes] | None:
        """(version, body) of the active bundle."""
        row = self._conn.execute(
            "SELECT version, body FROM models WHERE store_id=%s AND active", (store_id,)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def active_version(self, store_id: int) -> int | None:
        """The active bundle's version."""
        row = self._conn.execute("SELECT version FROM models WHERE store_id=%s AND active", (store_id,)).fetchone()
        return int(row[0]) if row else None

    def body(self, store_id: int, version: int) -> bytes:
        """One bundle (KeyError if there is no such version)."""
        row = self._conn.execute(
            "SELECT body FROM models WHERE store_id=%s AND version=%s", (store_id, version)
        ).fetchone()
        if row is None:
            raise KeyError(f"store {store_id} has no model v{version}")
        return bytes(row[0])

    def versions(self, store_id: int) -> list[ModelVersion]:
        """Every bundle of the store, newest first."""
        rows = self._conn.execute(
            "SELECT version, trained_us, active, metrics FROM models WHERE store_id=%s ORDER BY version DESC",
            (store_id,),
        )
        return [ModelVersion(store_id, v, from_us(t), bool(a), json.loads(m)) for v, t, a, m in rows]

    def activate(self, store_id: int, version: int | None) -> bool:
        """Make `version` the active one (None: none); False if there is no such version."""
        if (
            version is not None
            and not self._conn.execute(
                "SELECT 1 FROM models WHERE store_id=%s AND version=%s", (store_id, version)
            ).fetchone()
        ):
            return False
        self._conn.execute("UPDATE models SET active=false WHERE store_id=%s AND active", (store_id,))
        if version is not None:
            self._conn.execute("UPDATE models SET active=true WHERE store_id=%s AND version=%s", (store_id, version))
        return True
