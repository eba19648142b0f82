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
    """Trained bundles per store, numbered; one active, at most one other on trial (its share in `trial_share`).

    Changes of which bundle is active or on trial first lock the store's rows (`_lock`), so that two at once (an
    operator's `activate` and `train` starting a trial) happen one after the other, as on SQLite.
    """

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
            "SELECT version, trained_us, active, metrics, trial_share FROM models WHERE store_id=%s "
            "ORDER BY version DESC",
            (store_id,),
        )
        return [ModelVersion(store_id, v, from_us(t), bool(a), json.loads(m), s) for v, t, a, m, s in rows]

    def activate(self, store_id: int, version: int | None) -> bool:
        """Make `version` the active one (None: none) and end any trial; False if there is no such version."""
        if version is not None and version not in self._lock(store_id):
            return False
        self._end_trial(store_id)  # first: the table's CHECK keeps a share off the active row
        self._conn.execute("UPDATE models SET active=false WHERE store_id=%s AND active", (store_id,))
        if version is not None:
            self._conn.execute("UPDATE models SET active=true WHERE store_id=%s AND version=%s", (store_id, version))
        return True

    def trial(self, store_id: int) -> tuple[int, float] | None:
        """(version, share) of the bundle on trial."""
        row = self._conn.execute(
            "SELECT version, trial_share FROM models WHERE store_id=%s AND trial_share IS NOT NULL", (store_id,)
        ).fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def start_trial(self, store_id: int, version: int, share: float) -> bool:
        """Put `version` on trial for `share`, ending any other trial; False if it is missing or active."""
        if not 0 < share < 1:
            raise ValueError(f"a trial's share is between 0 and 1 (exclusive), not {share}")
        active = self._lock(store_id).get(version)
        if active is None or active:  # no such version, or the active one
            return False
        self._end_trial(store_id)
        self._conn.execute(
            "UPDATE models SET trial_share=%s WHERE store_id=%s AND version=%s", (share, store_id, version)
        )
        return True

    def end_trial(self, store_id: int) -> int | None:
        """End the store's trial; the version that was on trial."""
        self._lock(store_id)
        return self._end_trial(store_id)

    def _end_trial(self, store_id: int) -> int | None:
        """End the trial of a store whose rows are locked."""
        row = self._conn.execute(
            "UPDATE models SET trial_share=NULL WHERE store_id=%s AND trial_share IS NOT NULL RETURNING version",
            (store_id,),
        ).fetchone()
        return int(row[0]) if row else None

    def _lock(self, store_id: int) -> dict[int, bool]:
        """Lock the store's rows until the transaction ends; whether each version is the active one."""
        rows = self._conn.execute(
            "SELECT version, active FROM models WHERE store_id=%s ORDER BY version FOR UPDATE", (store_id,)
        )
        return {int(v): bool(a) for v, a in rows}
