"""Is the contact model's error its form or its data? Each fit once on outcomes and once on the truth's expectations.

On a kept exploration log (bench/policy_replay.py `--data-dir`), the contact model is fitted on the treated
decisions whose plan is a candidate (the explored ones, the rules' journey aside) twice: on what each cart did
(ordered or not), and on the simulator's exact P(order) of the plan it got (`simulate/truth.expected`), which
takes the noise away and leaves only what the form cannot express. Each is fitted in two forms on the same
design (`models/effects.design`): the product's, additive in log-odds over the no-contact model's (learn/train.py),
and additive in probability (ridge, the same penalties scaled by `--ridge`). For the carts of the following week
email reaches, it prints the mean effect of a few plan contrasts by each fit next to the truth's.

    .venv/bin/python bench/contact_form.py --profile default --seed 3 --data-dir DIR [--ridge 0.01]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cartrecover.decision_settings import DecisionConfig
from cartrecover.learn import train as training
from cartrecover.models import effects
from cartrecover.simulate.loop import touches_of
from cartrecover.simulate.shoppers import PROFILES
from cartrecover.simulate.truth import expected
from policy_replay import _log, log_arguments

# (label, plan, the plan it is compared with; None: no contact)
CONTRASTS = (
    ("email 1h", "email 1h", None),
    ("email 1h+24h+72h", "email 1h+24h+72h", None),
    ("15 % off at 1 h", "email 1h 15% off", "email 1h"),
    ("15 % off at 24 h", "email 1h+24h 15% off", "email 1h+24h"),
    ("15 % off at 72 h", "email 1h+24h+72h 15% off", "email 1h+24h+72h"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    log_arguments(parser, visitors=1500)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ridge", type=float, default=0.01, help="the additive fit's penalties, × the product's")
    args = parser.parse_args()
    profile = replace(PROFILES[args.profile], shoppers_per_day=args.visitors)
    found, purchasers, later, truths, cut = _log(args, profile, args.data_dir)
    plans = {p.name: p for p in DecisionConfig().plans()}
    margin, costs = profile.margin, profile.channel_costs

    def truth_of(shopper: Any, name: str | None) -> float:
        touches = touches_of(plans[name].touches, shopper) or () if name else ()
        return expected(shopper, touches, margin=margin, channel_costs=costs).p_order

    kept = [e for e in found if e.record.at < cut and (training._untouched(e.record) or e.record.plan in plans)]
    treated = [e for e in kept if not training._untouched(e.record)]
    exact = {id(e): truth_of(truths[e.record.cart_id].shopper, e.record.plan) for e in treated}
    print(f"{len(kept)} decisions before the cut, {len(treated)} of them treated with a candidate plan")
    carts = [
        (np.asarray(r.features, dtype=np.float64), truths[r.cart_id].shopper)
        for r in later
        if r.group == "treated" and r.cart_id in truths and "email" in truths[r.cart_id].shopper.channels
    ]
    named = sorted({n for _, a, b in CONTRASTS for n in (a, b) if n})
    truth = np.asarray([[truth_of(s, n) for n in named] for _, s in carts])
    alone = np.asarray([truth_of(s, None) for _, s in carts])
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # P(order) of each named plan, and of no contact
    for labels in ("outcomes", "truth"):
        relabelled = [
            training.Example(e.record, exact[id(e)], e.value) if labels == "truth" and id(e) in exact else e
            for e in kept
        ]  # a fractional label: the log loss takes the expectation as it is
        bundle = training.train(relabelled, purchasers).bundle
        described = np.asarray([plans[n].describe() for n in named], dtype=np.float64)
        base = np.asarray([bundle.no_contact(x) for x, _ in carts])
        columns[f"log-odds, {labels}"] = (np.asarray([bundle.outcomes(x, described) for x, _ in carts]), base)
        rows = [e for e in relabelled if not training._untouched(e.record)]
        x = np.asarray([e.record.features for e in rows])
        design = effects.design(x, np.asarray([e.record.action for e in rows]))
        y = np.asarray([float(e.ordered) for e in rows]) - np.asarray([bundle.no_contact(r) for r in x])
        beta = np.linalg.solve(design.T @ design + np.diag(training.penalties() * args.ridge), design.T @ y)
        added = [effects.design(np.repeat(x[None], len(named), 0), described) @ beta for x, _ in carts]
        columns[f"probability, {labels}"] = (base[:, None] + np.asarray(added), base)
    print(f"{len(carts)} carts of the following {args.eval_days} days; mean effect on P(order):")
    print(f"  {'contrast':<20}{'truth':>8}" + "".join(f"{name:>24}" for name in columns))
    for label, plan, other in CONTRASTS:
        effect = _contrast(named, plan, other)
        cells = "".join(f"{effect(p, base):>+24.3f}" for p, base in columns.values())
        print(f"  {label:<20}{effect(truth, alone):>+8.3f}{cells}")


def _contrast(named: Sequence[str], plan: str, other: str | None) -> Any:
    i, j = named.index(plan), (named.index(other) if other else None)

    def effect(p: np.ndarray, base: np.ndarray) -> float:
        return float(np.mean(p[:, i] - (p[:, j] if j is not None else base)))

    return effect


if __name__ == "__main__":
    main()
