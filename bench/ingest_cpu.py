"""Per-event Python cost of ingest, in process: decode (`read_batch`), validate + normalise, encode, append.

    python bench/ingest_cpu.py [--events N] [--rounds R] [--profile]

The bodies are `bench/ingest.py`'s batch-json requests (100 segment-analytics-python calls per `/v1/batch`
body). Each body goes through the steps in turn as the server does it (nothing kept alive between bodies, so garbage
collection costs what it costs there); the whole set is run `--rounds` times and the fastest round of each step
is reported (µs per event), so noise from other processes inflates it less. `append` is `SqliteEventLog.append` of 100 events (encode, insert,
commit with `synchronous=FULL`) into a fresh file; it depends on the disk more than on Python.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from cartrecover.adapters.sqlite import SqliteEventLog  # noqa: E402
from cartrecover.domain.events import encode_event  # noqa: E402
from cartrecover.ingest import segment  # noqa: E402
from ingest import BATCH_SIZE, _messages  # noqa: E402  (bench/ingest.py, this directory)


def bodies(events: int) -> list[bytes]:
    """`/v1/batch` bodies of 100 events, as bench/ingest.py's batch-json phase sends them."""
    messages = _messages("bench-key", events, seed=len("batch-json"))
    sent_at = (datetime(2026, 1, 6, tzinfo=UTC)).isoformat()
    return [
        json.dumps({"batch": messages[i : i + BATCH_SIZE], "sentAt": sent_at, "writeKey": "bench-key"}).encode()
        for i in range(0, len(messages), BATCH_SIZE)
    ]


def pipeline(data: list[bytes], now: datetime) -> tuple[float, float, float]:
    """Seconds spent in each step, body by body as the server does it (nothing kept alive between bodies)."""
    read = norm = enc = 0.0
    clock = time.perf_counter
    for body in data:
        t0 = clock()
        messages, sent_at, _ = segment.read_batch(body)
        t1 = clock()
        events = [
            segment.normalise(m, f"batch[{i}]", store_id=1, currency="USD", sent_at=sent_at, received_at=now)
            for i, m in enumerate(messages)
        ]
        t2 = clock()
        for e in events:
            encode_event(e)
        t3 = clock()
        read, norm, enc = read + t1 - t0, norm + t2 - t1, enc + t3 - t2
    return read, norm, enc


def main() -> None:
    """Time each step and print µs per event."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of normalise")
    args = parser.parse_args()
    data = bodies(args.events)
    n = sum(len(segment.read_batch(b)[0]) for b in data)
    now = datetime(2026, 1, 6, 0, 0, 1, tzinfo=UTC) + timedelta(0)

    rounds = [pipeline(data, now) for _ in range(args.rounds)]
    timings = {name: min(r[k] for r in rounds) for k, name in enumerate(("read_batch", "normalise", "encode_event"))}
    total = min(sum(r) for r in rounds)
    events = [
        [segment.normalise(m, "x", store_id=1, currency="USD", sent_at=s, received_at=now) for m in messages]
        for messages, s, _ in map(segment.read_batch, data)
    ]

    def append() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            log = SqliteEventLog(str(Path(tmp) / "events.db"))
            for batch in events:
                log.append(batch)

    started = time.perf_counter()
    append()
    timings["append (encode+insert+commit/100)"] = time.perf_counter() - started
    print(f"{n} events in {len(data)} bodies, fastest of {args.rounds} rounds, python {sys.version.split()[0]}")
    for name, seconds in timings.items():
        print(f"  {name:36s} {seconds / n * 1e6:6.2f} µs/event")
    print(f"  {'decode+normalise+encode':36s} {total / n * 1e6:6.2f} µs/event ({n / total:,.0f} events/s on one core)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(pipeline, data, now)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
