"""What the simulated stores allow a policy to earn: the fixed journey, the best policy on what a shop sees, the oracle.

For the treated carts of a short rules-only run of a profile, each priced with the simulator's exact expectation
(simulate/truth.py) over the engine's candidate plans:

- fixed: the "1h / 24h / 72h + 10 %" journey (simulate.loop.fixed_plan);
- signals: per cart, the plan with the best expected profit averaged over the hidden kinds in the proportions
  the cart's visible signals imply: the best any policy that sees only what the shop sees can do;
- oracle: per cart, the best plan for the shopper's actual kind.

    .venv/bin/python bench/policy_ceiling.py --profiles default fashion electronics [--days 5] [--weights 1 2 3]
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace

from cartrecover.decision_settings import DecisionConfig
from cartrecover.simulate.loop import Priced, fixed_plan, touches_of
from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.shoppers import PROFILES
from cartrecover.simulate.truth import Expected, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=sorted(PROFILES), choices=sorted(PROFILES))
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--weights",
        type=float,
        nargs="*",
        default=[],
        help="also the frontier: per [decisions] discount_weight w, the policies that maximise profit − (w − 1)·discount",
    )
    args = parser.parse_args()
    print(f"{'profile':<18}{'carts':>6}  {'fixed':>9}{'signals':>9}{'oracle':>9}  discounts: fixed / signals / oracle")
    for name in args.profiles:
        profile = PROFILES[name]
        env = {"CARTRECOVER_DECISIONS_POLICY": "rules", "CARTRECOVER_DECISIONS_EXPLORATION": "0"}
        run = run_simulation(args.days, args.seed, profile, show=False, progress=False, env=env)
        config = replace(DecisionConfig(), margin=profile.margin)
        economics = config.economics(30)
        plans = [p for p in config.plans() if economics.allows(p)]
        m, c = profile.margin, profile.channel_costs
        fixed, signals, oracle, carts, chosen = Priced(), Priced(), Priced(), 0, Counter[str]()
        frontier = {weight: (Priced(), Priced()) for weight in args.weights}
        for truth in run["shoppers"]:
            if truth.group != "treated":
                continue
            carts += 1
            shopper = truth.shopper
            options = [t for t in (touches_of(p.touches, shopper) for p in plans) if t is not None]
            f = expected(
                shopper, fixed_plan(shopper.channels), margin=profile.margin, channel_costs=profile.channel_costs
            )
            fixed.add(f.incremental_profit, f.discount, f.messages)
            shares = profile.response.kind_shares(shopper.signals)

            kinds = [(replace(shopper, kind=k), w) for k, w in shares.items()]
            averaged = [
                sum(w * expected(who, option, margin=m, channel_costs=c).incremental_profit for who, w in kinds)
                for option in options
            ]
            best_seen = options[averaged.index(max(averaged))]
            s = expected(shopper, best_seen, margin=profile.margin, channel_costs=profile.channel_costs)
            signals.add(s.incremental_profit, s.discount, s.messages)
            chosen[" + ".join(f"{t.delay_hours:g}h {t.channel} {t.percent_off}%" for t in best_seen) or "none"] += 1
            o = max(
                (expected(shopper, t, margin=m, channel_costs=c) for t in options), key=lambda e: e.incremental_profit
            )
            oracle.add(o.incremental_profit, o.discount, o.messages)
            for weight, (seen_at, oracle_at) in frontier.items():
                worth = [
                    sum(w * _worth(expected(who, option, margin=m, channel_costs=c), weight) for who, w in kinds)
                    for option in options
                ]
                e = expected(shopper, options[worth.index(max(worth))], margin=m, channel_costs=c)
                seen_at.add(e.incremental_profit, e.discount, e.messages)
                e = max(
                    (expected(shopper, t, margin=m, channel_costs=c) for t in options), key=lambda e: _worth(e, weight)
                )
                oracle_at.add(e.incremental_profit, e.discount, e.messages)
        print(
            f"{profile.name:<18}{carts:>6}  {fixed.profit:>9,.0f}{signals.profit:>9,.0f}{oracle.profit:>9,.0f}  "
            f"{fixed.discount:,.0f} / {signals.discount:,.0f} / {oracle.discount:,.0f}   "
            f"signals ÷ fixed {signals.profit / fixed.profit:.2f}, oracle ÷ fixed {oracle.profit / fixed.profit:.2f}, "
            f"signals ÷ oracle {signals.profit / oracle.profit:.2f}"
        )
        print("   the signals' best plans: " + ", ".join(f"{p} ({n})" for p, n in chosen.most_common(4)))
        for weight, (seen_at, oracle_at) in frontier.items():
            print(
                f"   weight {weight:>5g}: signals profit ÷ fixed {seen_at.profit / fixed.profit:.2f}, discounts ÷ fixed "
                f"{seen_at.discount / fixed.discount:.2f}; oracle profit ÷ fixed {oracle_at.profit / fixed.profit:.2f}, "
                f"discounts ÷ fixed {oracle_at.discount / fixed.discount:.2f}; signals ÷ unconstrained oracle "
                f"{seen_at.profit / oracle.profit:.2f}"
            )


def _worth(e: Expected, weight: float) -> float:
    """What a plan is worth to a policy that counts each unit of discount `weight` times (its profit already
    counts it once)."""
    return e.incremental_profit - (weight - 1) * e.discount


if __name__ == "__main__":
    main()
