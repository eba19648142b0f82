"""Coverage of the report's 95 % interval: over many seeds, how often the simulator's truth lies inside it.

    python bench/coverage.py [--seeds 40] [--first-seed 1] [--days 21] [--jobs 2]

Each seed is one `run_simulation` of the default store profile (300 visitors a day, a 20 % holdout) for `--days`
days plus the 7 days the driver lets every journey settle: a fresh `cartrecover serve --clock manual` on
127.0.0.1 and its data dir, removed afterwards. `--jobs` runs that many simulations at once (each is a driver
process and a server process). For every seed it prints the true incremental revenue (compare.py: over the
treated carts, order totals minus what they would have spent with no contact), the report's estimate and
interval, and whether the truth is inside; then the share of seeds inside (with a Wilson interval on that
share), the mean bias of the estimate, and how the spread of the errors compares with the interval's width.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cartrecover.simulate.run import run_simulation  # noqa: E402


def one_seed(seed: int, days: int) -> dict[str, Any]:
    """One simulation: its truth, the report's estimate and interval, and the engine's counts."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"cartrecover-coverage-{seed}-"))
    try:
        summary = run_simulation(days=days, seed=seed, data_dir=data_dir, show=False, progress=False)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    estimate, groups = summary["estimate"], summary["groups"]
    return {
        "seed": seed,
        "truth": summary["true_incremental_revenue"],
        "estimate": estimate["revenue"],
        "low": estimate["low"],
        "high": estimate["high"],
        "inside": estimate["inside"],
        "treated": groups["treated"]["abandoned"],
        "holdout": groups["holdout"]["abandoned"],
        "mismatches": len(summary["mismatches"]),
        "wall": summary["wall_seconds"],
    }


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % score interval for a proportion."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    began = time.perf_counter()
    print(f"{'seed':>5}{'treated':>9}{'holdout':>9}{'truth':>12}{'estimate':>12}{'95 % interval':>26}  inside")
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(one_seed, seeds, [args.days] * len(seeds)):
            results.append(r)
            interval = f"{r['low'] / 100:,.0f} to {r['high'] / 100:,.0f}"
            odd = f"  ({r['mismatches']} carts with an unexpected status)" if r["mismatches"] else ""
            print(
                f"{r['seed']:>5}{r['treated']:>9}{r['holdout']:>9}{r['truth'] / 100:>12,.0f}"
                f"{r['estimate'] / 100:>12,.0f}{interval:>26}  {'yes' if r['inside'] else 'NO'}"
                f"{odd}",
                flush=True,
            )
    summarise(results, time.perf_counter() - began, args)


def summarise(results: list[dict[str, Any]], wall: float, args: argparse.Namespace) -> None:
    """Coverage, bias, and the spread of the errors against the interval's implied standard error."""
    inside = sum(bool(r["inside"]) for r in results)
    low, high = wilson(inside, len(results))
    errors = [(r["estimate"] - r["truth"]) / 100 for r in results]
    truths = [r["truth"] / 100 for r in results]
    standard_errors = [(r["high"] - r["low"]) / 100 / (2 * 1.96) for r in results]  # Welch's t ≈ z at these sizes
    bias, spread = statistics.fmean(errors), statistics.stdev(errors)
    print(
        f"\ncoverage: {inside}/{len(results)} = {inside / len(results):.1%} of seeds have the truth inside the "
        f"report's 95 % interval (Wilson 95 % interval on that share: {low:.1%} to {high:.1%}); target ≥ 90 %"
    )
    print(
        f"mean bias (estimate − truth): {bias:+,.0f} (± {1.96 * spread / math.sqrt(len(errors)):,.0f}), "
        f"{bias / statistics.fmean(truths):+.1%} of the mean truth {statistics.fmean(truths):,.0f}"
    )
    print(
        f"spread of estimate − truth: sd {spread:,.0f}; the intervals' mean standard error "
        f"{statistics.fmean(standard_errors):,.0f} (a ratio of {spread / statistics.fmean(standard_errors):.2f})"
    )
    print(
        f"carts with an unexpected status: {sum(r['mismatches'] for r in results)}; "
        f"{len(results)} seeds × {args.days} days (+7 to settle), {args.jobs} at a time, in {wall:.0f} s wall time "
        f"({statistics.fmean(r['wall'] for r in results):.1f} s per simulation)"
    )


if __name__ == "__main__":
    main()
