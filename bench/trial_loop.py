"""The model's trial against the truth: what `cartrecover models trial` says, week after week, and what is so.

For each profile and seed, `simulate.loop.run_loop` without the fixed run: explore (`--explore-days` at
`--exploration`), `cartrecover train` (a model that passes its offline check goes on trial, `[decisions]
trial_share`), then `--eval-days` with the trial running. If the model went on trial, at T = start + 14, 21, … days
(the recovery windows of the first 7, 14, … evaluation days have closed) `cartrecover models trial --json --until T`
gives its verdict and its difference, candidate − running profit per decision, with its confidence sequence (major
units). Beside it the truth the loop gives, `LoopResult.trial_difference_before` (the simulator's exact expected profit of
the plan each cart got, candidate side's mean less running side's) / 100: on the carts the look counts (decided
before T − 7 days) and on every evaluation cart.

    .venv/bin/python bench/trial_loop.py --profiles default electronics fashion --seeds 1 \
        [--visitors 1500] [--explore-days 21] [--eval-days 35] [--exploration 0.3] [--data-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cartrecover.simulate import loop
from cartrecover.simulate.shoppers import PROFILES, StoreProfile
from policy_loop import loop_arguments

WINDOW = timedelta(days=7)  # [rules] recovery_window's default: a look at T counts decisions made before T − WINDOW
FIRST_LOOK = 14  # days after the start: the first week's windows have closed


def main() -> None:
    parser = loop_arguments(__doc__.splitlines()[0], eval_days=35)
    parser.add_argument("--data-dir", type=Path, help="keep each loop's data in DIR/PROFILE-SEED (default: a temp dir)")
    parser.add_argument("--json", help="also write every look to this file (after each loop)")
    args = parser.parse_args()
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-trial-"))
    found = []
    print(
        f"{'profile':<13}{'seed':>5}{'look':>6}{'closed':>7}  {'decisions':>11}  {'judge':>7} {'95 % at any look':>17}"
        f"  {'verdict':<9}{'truth':>7}{'all':>7}"
    )
    for name in args.profiles:
        profile = replace(PROFILES[name], shoppers_per_day=args.visitors)
        for seed in args.seeds:
            found.append(_one(args, profile, seed, base / f"{name}-{seed}"))
            if args.json:
                with open(args.json, "w") as file:
                    json.dump(found, file, indent=1, default=str)


def _one(args: argparse.Namespace, profile: StoreProfile, seed: int, data_dir: Path) -> dict[str, Any]:
    """One loop and its looks, printed; what was measured, for `--json`."""
    began = time.perf_counter()
    result = loop.run_loop(
        profile,
        seed,
        explore_days=args.explore_days,
        eval_days=args.eval_days,
        exploration=args.exploration,
        fixed_run=False,
        data_dir=data_dir,
    )
    head = f"{profile.name:<13}{seed:>5}"
    found: dict[str, Any] = {"profile": profile.name, "seed": seed, "data_dir": str(data_dir)}
    found |= {
        "training": result.training.split("\n", 1)[0],
        "carts": result.carts,
        "running_carts": result.running_carts,
    }
    if not (result.deployed and result.running_carts and result.deployed_at):
        print(f"{head}  no trial: {found['training']} ({time.perf_counter() - began:.0f} s)", flush=True)
        return found | {"looks": []}
    start = result.deployed_at
    found |= {"truth_all": result.trial_difference / 100, "looks": []}
    for days in range(FIRST_LOOK, args.eval_days + 1, 7):
        until = start + timedelta(days=days)
        judged = _judge(data_dir / "learned", until, profile)
        difference, candidate, running = result.trial_difference_before(until - WINDOW)
        truth = {"difference": difference / 100, "candidate": candidate, "running": running}
        look = {**judged, "days": days, "until": until.isoformat(), "truth": truth, "span_days": judged["days"]}
        found["looks"].append(look)
        print(f"{head}{_row(look, found)}", flush=True)
    print(f"{head}  {found['training']} ({time.perf_counter() - began:.0f} s)", flush=True)
    return found


def _judge(data_dir: Path, until: datetime, profile: StoreProfile) -> dict[str, Any]:
    """`cartrecover models trial --json` at `until`, with the store's margin as the loop gives it to the engine."""
    command = [sys.executable, "-m", "cartrecover", "models", "trial", "--json", "--until", until.isoformat()]
    env = {**os.environ, "CARTRECOVER_DECISIONS_MARGIN": str(profile.margin)}
    ran = subprocess.run([*command, "--data-dir", str(data_dir)], capture_output=True, text=True, env=env, check=False)
    if ran.returncode != 0:
        raise RuntimeError(f"cartrecover models trial failed: {ran.stderr.strip() or ran.stdout.strip()}")
    judged: dict[str, Any] = json.loads(ran.stdout)
    return judged


def _row(look: dict[str, Any], found: dict[str, Any]) -> str:
    decisions = f"{look['candidate']['decisions']}/{look['running']['decisions']}"
    interval = f"{look['low']:+.2f} to {look['high']:+.2f}"
    return (
        f"{look['days']:>6}{look['days'] - 7:>7}  {decisions:>11}  {look['difference']:>+7.2f} {interval:>17}"
        f"  {look['verdict']:<9}{look['truth']['difference']:>+7.2f}{found['truth_all']:>+7.2f}"
    )


if __name__ == "__main__":
    main()
