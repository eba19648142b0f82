"""The learning loop on simulated stores: the learned policy against the fixed journey and the oracle.

For each profile and seed, `simulate.loop.run_loop`: explore (`--explore-days` at `--exploration`), `cartrecover
train`, then `--eval-days` with the learned policy and, on a copy, the fixed "1h / 24h / 72h + 10 %" journey with
the same traffic. Each policy is priced on the evaluation's treated carts with the simulator's exact expectation;
the realised figures of both runs follow.

    .venv/bin/python bench/policy_loop.py --profiles default fashion electronics --seeds 1 2 \
        [--visitors 1500] [--explore-days 21] [--eval-days 7] [--exploration 0.3] [--discount-weight 1] [--caution 0]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

from cartrecover.simulate.loop import LoopResult, run_loop
from cartrecover.simulate.shoppers import PROFILES


def loop_arguments(description: str, *, eval_days: int) -> argparse.ArgumentParser:
    """The options of a learning-loop bench: which stores and seeds, their traffic, and the loop's phases."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profiles", nargs="+", default=["default"], choices=sorted(PROFILES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--visitors", type=int, default=1500, help="visitors a day (the profiles' default: 300)")
    parser.add_argument("--explore-days", type=int, default=21)
    parser.add_argument("--eval-days", type=int, default=eval_days)
    parser.add_argument("--exploration", type=float, default=0.3)
    return parser


def main() -> None:
    parser = loop_arguments(__doc__.splitlines()[0], eval_days=7)
    parser.add_argument(
        "--discount-weight", help="the learning store's [decisions] discount_weight (default: the setting's, 1)"
    )
    parser.add_argument("--caution", help="the learning store's [decisions] caution (default: the setting's)")
    parser.add_argument("--json", help="also write every result to this file")
    args = parser.parse_args()
    chosen = (("discount_weight", args.discount_weight), ("caution", args.caution))
    decisions = {name: value for name, value in chosen if value}
    results = []
    print(
        f"{'profile':<18}{'seed':>5}{'carts':>7}  {'learned':>10}{'fixed':>10}{'oracle':>10}"
        f"  {'÷ fixed':>8}{'÷ oracle':>9}  {'discount ÷ fixed':>16}  realised learned / fixed  (model live?)"
    )
    for name in args.profiles:
        profile = replace(PROFILES[name], shoppers_per_day=args.visitors)
        for seed in args.seeds:
            began = time.perf_counter()
            result = run_loop(
                profile,
                seed,
                explore_days=args.explore_days,
                eval_days=args.eval_days,
                exploration=args.exploration,
                decisions=decisions or None,
            )
            realised = result.realised
            print(
                f"{profile.name:<18}{seed:>5}{result.carts:>7}  {result.learned.profit:>10,.0f}"
                f"{result.fixed.profit:>10,.0f}{result.oracle.profit:>10,.0f}  {result.ratio('profit'):>8.2f}"
                f"{result.ratio('oracle'):>9.2f}  {result.ratio('discount'):>16.2f}  "
                f"{realised['learned']['true_incremental_profit']:,.0f} / {realised['fixed']['true_incremental_profit']:,.0f}"
                f"  ({_state(result)}, "
                f"{time.perf_counter() - began:.0f} s)",
                flush=True,
            )
            results.append(result)
    if args.json:
        with open(args.json, "w") as file:
            json.dump([asdict(r) for r in results], file, indent=1, default=str)


def _state(result: LoopResult) -> str:
    if not result.deployed:
        return "not deployed (the offline check found it worse): the rules ran"
    if not result.running_carts:
        return "model live"
    return f"model on trial, {result.running_carts} carts on the running side, {result.trial_difference:+.1f} a cart"


if __name__ == "__main__":
    main()
