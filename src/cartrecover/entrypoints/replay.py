"""`cartrecover replay FILE.jsonl`: Segment calls from a file, applied in event-time order on a manual clock."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from cartrecover.bootstrap import build_engine
from cartrecover.errors import ConfigError, InvalidEvent
from cartrecover.ingest import segment
from cartrecover.ingest.timestamps import parse_timestamp
from cartrecover.ports.stores import Store
from cartrecover.settings import Settings

CHUNK = 1_000
_decoder = msgspec.json.Decoder(segment.Message, float_hook=Decimal)


def load_calls(path: Path) -> list[tuple[datetime, int, segment.Message]]:
    """Every call of the file with its event time, sorted by it (file order among equals)."""
    calls = []
    last: datetime | None = None
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                message = _decoder.decode(line)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise InvalidEvent(f"{path}:{number}: {exc}") from exc
            stamp = message.original_timestamp or message.timestamp
            at = parse_timestamp(stamp, f"{path}:{number} timestamp") if stamp else last
            if at is None:
                raise InvalidEvent(f"{path}:{number}: the first call needs a timestamp to replay on event time")
            last = at
            calls.append((at, number, message))
    calls.sort(key=lambda call: (call[0], call[1]))
    return calls


def replay_file(
    settings: Settings, path: Path, store_name: str | None, until: datetime | None = None, *, send: bool = False
) -> dict[str, Any]:
    """Replay the file into a store; returns a summary (events, duplicates, carts by status, steps, speed).

    Journeys run as they would have, but their messages go to the null channel unless `send`: replaying
    history must not mail anyone.
    """
    if not send:
        settings = replace(settings, channels=dict.fromkeys(settings.channels, "null"))
    calls = load_calls(path)
    if not calls:
        raise InvalidEvent(f"{path} has no calls")
    engine = build_engine(settings, start=calls[0][0] - timedelta(seconds=1))
    store = _pick_store(engine.stores.all(), store_name)
    started, new = time.perf_counter(), 0
    with tqdm(total=len(calls), unit="ev", desc="replay", smoothing=0.1) as progress:
        for first in range(0, len(calls), CHUNK):
            chunk = calls[first : first + CHUNK]
            events = [
                segment.normalise(
                    message,
                    f"line {number}",
                    store_id=store.store_id,
                    currency=store.currency,
                    sent_at=None,
                    received_at=at,
                )
                for at, number, message in chunk
            ]
            new += sum(engine.append(events))
            engine.advance_clock(chunk[-1][0])
            progress.update(len(chunk))
    if until is not None and until > engine.clock.now():
        engine.advance_clock(until)
    elapsed = time.perf_counter() - started
    with engine.database.read() as uow:
        counts = uow.carts.count_by_status()
        steps = uow.outbox.count_by_status()
    engine.close()
    return {
        "store": store.name,
        "events": len(calls),
        "new": new,
        "duplicates": len(calls) - new,
        "clock": engine.clock.now().isoformat(),
        "carts": counts,
        "steps": steps,
        "seconds": round(elapsed, 2),
        "events_per_second": round(len(calls) / elapsed) if elapsed else None,
    }


def _pick_store(stores: list[Store], name: str | None) -> Store:
    if name is not None:
        found = next((s for s in stores if s.name == name), None)
        if found is None:
            raise ConfigError(f"no store named {name!r}; create it with `cartrecover stores add {name}`")
        return found
    if len(stores) != 1:
        raise ConfigError(f"name the store to replay into with --store (there are {len(stores)})")
    return stores[0]


__all__ = ["load_calls", "replay_file"]
