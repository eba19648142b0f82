"""The learning loop on the simulator, as a user would run it: explore, train, deploy; against the fixed journey.

1. `days` simulated days of a store profile with exploration at `--exploration` (the rules' journey otherwise);
2. `cartrecover train` on that data;
3. the data directory copied; `eval_days` more days on each copy, with the same traffic seed: one with the learned
   policy (exploration back to its default), one with the fixed "1h / 24h / 72h + 10 %" journey on email or SMS.

It prints each run's true net incremental profit and discount spend from the simulator (minor units). The oracle
comparison (`simulate.truth.oracle` per cart) is not in it yet.

    .venv/bin/python bench/policy_loop.py --profile default --seed 1 [--days 14] [--eval-days 7]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.shoppers import PROFILES

FIXED_JOURNEY = """
[[journey.steps]]
name = "reminder"
delay = "1h"
channels = ["email", "sms"]
template = "reminder"
[[journey.steps]]
name = "second reminder"
delay = "24h"
channels = ["email", "sms"]
template = "reminder"
[[journey.steps]]
name = "last chance"
delay = "72h"
channels = ["email", "sms"]
template = "incentive"
incentive = { percent = 10, min_cart_value = "0" }
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--eval-days", type=int, default=7)
    parser.add_argument("--exploration", default="0.3")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    base = Path(tempfile.mkdtemp(prefix="cartrecover-loop-"))
    fixed_config = base / "fixed.toml"
    fixed_config.write_text(FIXED_JOURNEY)
    explore = {"CARTRECOVER_DECISIONS_EXPLORATION": args.exploration}
    first = run_simulation(args.days, args.seed, profile, base / "learned", show=False, progress=False, env=explore)
    shutil.copytree(base / "learned", base / "fixed")
    until = first["end"].isoformat()
    command = [sys.executable, "-m", "cartrecover", "train", "--data-dir", str(base / "learned"), "--until", until]
    print(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    common = {"keys": first["keys"], "start": first["end"], "show": False, "progress": False}
    fixed_env = {
        "CARTRECOVER_DECISIONS_POLICY": "rules",
        "CARTRECOVER_DECISIONS_EXPLORATION": "0",
        "CARTRECOVER_CONFIG": str(fixed_config),
    }
    seed = args.seed + 1000
    learned = run_simulation(args.eval_days, seed, profile, base / "learned", env={}, **common)  # type: ignore[arg-type]
    fixed = run_simulation(args.eval_days, seed, profile, base / "fixed", env=fixed_env, **common)  # type: ignore[arg-type]
    for name, summary in (("learned", learned), ("fixed journey", fixed)):
        print(
            f"{name:<14} true net incremental profit {summary['true_incremental_profit']:>12,.0f}   "
            f"discount spend {summary['discount_spend']:>10,.0f}   message cost {summary['message_cost']:>8,.0f}"
        )
    ratio = learned["true_incremental_profit"] / fixed["true_incremental_profit"]
    print(
        f"learned ÷ fixed: profit {ratio:.2f} (target ≥ 1.3), discounts "
        f"{learned['discount_spend'] / max(fixed['discount_spend'], 1):.2f} (target ≤ 0.8); data in {base}"
    )


if __name__ == "__main__":
    main()
