"""The decision log and the model registry in the state store."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from cartrecover.adapters._time import from_us, to_us
from cartrecover.ports.decisions import DecisionRecord, ModelVersion

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(DecisionRecord)


class SqliteDecisions:
    """Decisions, by store and time (for training) and by cart (for its timeline)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, record: DecisionRecord) -> None:
        self._conn.execute(
            "INSERT INTO decisions (store_id, cart_id, at_us, incentive, body) VALUES (?, ?, ?, ?, ?)",
            (record.store_id, record.cart_id, to_us(record.at), record.incentive, _encoder.encode(record)),
        )

    def between(self, store_id: int, since: datetime, until: datetime) -> list[DecisionRecord]:
        rows = self._conn.execute(
            "SELECT body FROM decisions WHERE store_id=? AND at_us>=? AND at_us<? ORDER BY at_us, rowid",
            (store_id, to_us(since), to_us(until)),
        )
        return [_decoder.decode(body) for (body,) in rows]

    def for_cart(self, store_id: int, cart_id: str) -> list[DecisionRecord]:
        rows = self._conn.execute(
            "SELECT body FROM decisions WHERE store_id=? AND cart_id=? ORDER BY at_us, rowid", (store_id, cart_id)
        )
        return [_decoder.decode(body) for (body,) in rows]

    def incentive_committed(self, store_id: int, since: datetime) -> float:
        (total,) = self._conn.execute(
            "SELECT COALESCE(SUM(incentive), 0) FROM decisions WHERE store_id=? AND at_us>=?",
            (store_id, to_us(since)),
        ).fetchone()
        return float(total)


class SqliteModels:
    """Trained bundles per store, numbered; one active, at most one other on trial (its share in `trial_share`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, store_id: int, trained_at: datetime, metrics: dict[str, Any], body: bytes, activate: bool) -> int:
        (latest,) = self._conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM models WHERE store_id=?", (store_id,)
        ).fetchone()
        version = int(latest) + 1
        self._conn.execute(
            "INSERT INTO models (store_id, version, trained_us, active, metrics, body) VALUES (?, ?, ?, 0, ?, ?)",
            (store_id, version, to_us(trained_at), json.dumps(metrics, sort_keys=True), body),
        )
        if activate:
            self.activate(store_id, version)
        return version

    def active(self, store_id: int) -> tuple[int, bytes] | None:
        row = self._conn.execute(
            "SELECT version, body FROM models WHERE store_id=? AND active=1", (store_id,)
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def active_version(self, store_id: int) -> int | None:
        row = self._conn.execute("SELECT version FROM models WHERE store_id=? AND active=1", (store_id,)).fetchone()
        return int(row[0]) if row else None

    def body(self, store_id: int, version: int) -> bytes:
        row = self._conn.execute(
            "SELECT body FROM models WHERE store_id=? AND version=?", (store_id, version)
        ).fetchone()
        if row is None:
            raise KeyError(f"store {store_id} has no model v{version}")
        return bytes(row[0])

    def versions(self, store_id: int) -> list[ModelVersion]:
        rows = self._conn.execute(
            "SELECT version, trained_us, active, metrics, trial_share FROM models WHERE store_id=? "
            "ORDER BY version DESC",
            (store_id,),
        )
        return [ModelVersion(store_id, v, from_us(t), bool(a), json.loads(m), s) for v, t, a, m, s in rows]

    def activate(self, store_id: int, version: int | None) -> bool:
        if (
            version is not None
            and not self._conn.execute(
                "SELECT 1 FROM models WHERE store_id=? AND version=?", (store_id, version)
            ).fetchone()
        ):
            return False
        self.end_trial(store_id)  # first: the table's CHECK keeps a share off the active row
        self._conn.execute("UPDATE models SET active=0 WHERE store_id=? AND active=1", (store_id,))
        if version is not None:
            self._conn.execute("UPDATE models SET active=1 WHERE store_id=? AND version=?", (store_id, version))
        return True

    def trial(self, store_id: int) -> tuple[int, float] | None:
        row = self._conn.execute(
            "SELECT version, trial_share FROM models WHERE store_id=? AND trial_share IS NOT NULL", (store_id,)
        ).fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def start_trial(self, store_id: int, version: int, share: float) -> bool:
        if not 0 < share < 1:
            raise ValueError(f"a trial's share is between 0 and 1 (exclusive), not {share}")
        row = self._conn.execute(
            "SELECT active FROM models WHERE store_id=? AND version=?", (store_id, version)
        ).fetchone()
        if row is None or row[0]:
            return False
        self.end_trial(store_id)
        self._conn.execute("UPDATE models SET trial_share=? WHERE store_id=? AND version=?", (share, store_id, version))
        return True

    def end_trial(self, store_id: int) -> int | None:
        rows = self._conn.execute(
            "UPDATE models SET trial_share=NULL WHERE store_id=? AND trial_share IS NOT NULL RETURNING version",
            (store_id,),
        ).fetchall()
        return int(rows[0][0]) if rows else None


def add_trial_share(conn: sqlite3.Connection) -> None:
    """Migration 0004's step: the column of a model's trial share (unless there)."""
    if "trial_share" not in {row[1] for row in conn.execute("PRAGMA table_info(models)")}:
        conn.execute(
            "ALTER TABLE models ADD COLUMN trial_share REAL "
            "CHECK (trial_share IS NULL OR (active = 0 AND trial_share > 0 AND trial_share < 1))"
        )
