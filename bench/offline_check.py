"""How well the offline check sees a candidate's gain over the running policy, against the simulator's truth.

`cartrecover train` lets a new model go live only if its policy beats the running one offline, on the newest
20 % of the log (`learn.evaluate.check`). This bench simulates an exploration log (`--days` at `--exploration`, the
default journey deciding the rest, as in the learning loop), cuts it into `--folds` blocks in time and trains a
candidate on all but each block (the newest block's candidate is the check's). For each `--caution` /
`--discount-weight` variant of the candidates' policy it prints, per comparable decision:

- truth: the simulator's expected profit of the candidate's plans less that of the running journey's, on the same
  decisions (what the check should see);
- paired: the check's estimate (`evaluate.compare`), the doubly robust difference on the same decisions, with its
  95 % interval; on the newest block, and over every block (cross-fitted);
- unpaired: the former check's, the candidate's doubly robust value less the mean the running policy's own
  decisions earned, with the interval of the doubly robust value;
- honest direct: a reward model fitted on each block alone values the other blocks' candidate's plans against the
  journey's on that block (no winner's curse); the mean over blocks ± their spread.

A `--data-dir` kept from an earlier run (it holds `truth.pickle`) is reused instead of simulating again.

    .venv/bin/python bench/offline_check.py --profile electronics --seed 2 --visitors 1500 --days 21 \
        [--exploration 0.3] [--data-dir DIR] [--caution 0 1] [--discount-weight 1 3]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cartrecover.bootstrap import build_engine
from cartrecover.decide import policy
from cartrecover.decide.actions import Plan, Touch, plan_of
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import DEFAULT_JOURNEY
from cartrecover.learn import evaluate
from cartrecover.learn.train import Example, examples, train
from cartrecover.settings import load_settings
from cartrecover.simulate.loop import touches_of
from cartrecover.simulate.shoppers import PROFILES, StoreProfile
from cartrecover.simulate.truth import expected
from policy_replay import kept_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--visitors", type=int, default=1500)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--exploration", type=float, default=0.3)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--folds", type=int, default=5, help="blocks of the log; the newest is the former check's")
    parser.add_argument("--caution", type=float, nargs="+", default=[0.0])
    parser.add_argument("--discount-weight", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    profile = replace(PROFILES[args.profile], shoppers_per_day=args.visitors)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-check-"))
    found, purchasers, truths = _log(args, profile, data_dir)
    bounds = [round(len(found) * k / args.folds) for k in range(args.folds + 1)]
    blocks = [found[start:end] for start, end in itertools.pairwise(bounds)]
    began = time.perf_counter()
    bundles = [train([*found[:start], *found[end:]], purchasers).bundle for start, end in itertools.pairwise(bounds)]
    seconds = (time.perf_counter() - began) / args.folds
    judges = [train(block, purchasers).bundle for block in blocks]  # each block's own model, to judge the others'
    base = replace(DecisionConfig(), margin=profile.margin)
    print(
        f"{profile.name} seed {args.seed}: {len(found)} decisions in {args.folds} blocks; a training takes {seconds:.0f} s"
        f" ({data_dir})\nthe newest block (the former check's): truth, paired, unpaired; every block (cross-fitted):"
        " truth, paired"
    )
    print(
        f"{'caution':>8}{'weight':>7}{'agree':>7}  {'truth':>7} {'paired':>7} {'95 % interval':>17}"
        f" {'unpaired':>8} {'95 % interval':>17}  {'truth':>7} {'paired':>7} {'95 % interval':>17}  honest direct"
    )
    for weight in args.discount_weight:
        for caution in args.caution:
            config = replace(base, caution=caution, discount_weight=weight)
            terms = [evaluate.paired_terms(b, m, config, 30) for b, m in zip(blocks, bundles, strict=True)]
            gaps = [_truth_gaps(b, m, config, truths, profile) for b, m in zip(blocks, bundles, strict=True)]
            last, every = evaluate.comparison(terms[-1]), evaluate.comparison(np.concatenate(terms))
            old = _unpaired(blocks[-1], bundles[-1], config)
            direct = [
                float(_honest_direct(b, m, j, config, 30).mean())
                for b, m, j in zip(blocks, bundles, judges, strict=True)
            ]
            print(
                f"{caution:>8g}{weight:>7g}{every.agreement:>7.0%}  {np.mean(gaps[-1]):>+7.3f} {_shown(last.difference)}"
                f" {old[0]:>+8.3f} [{old[1]:>+7.3f}, {old[2]:>+7.3f}]  {np.mean(np.concatenate(gaps)):>+7.3f}"
                f" {_shown(every.difference)}  {np.mean(direct):>+7.3f} ± {np.std(direct, ddof=1):.3f}",
                flush=True,
            )


def _shown(estimate: Any) -> str:
    return f"{estimate.value:>+7.3f} [{estimate.low:>+7.3f}, {estimate.high:>+7.3f}]"


def _honest_direct(
    found: Sequence[Example], chooser: Any, judge: Any, config: DecisionConfig, max_discount: int
) -> np.ndarray:
    """Per comparable decision: `judge`'s expected profit of `chooser`'s plan less that of the running policy's.

    With a judge fitted on other data than the chooser, the chooser's winner's curse does not inflate it."""
    economics, plans = config.economics(max_discount), config.plans()
    out = []
    for example in (e for e in found if e.record.propensity and e.record.group != "holdout" and e.record.greedy):
        record = example.record
        row = record.features
        choice = policy.choose(
            chooser, row, evaluate._reachable(plans, row), order_value=row[0], clv=0.0, economics=economics,
            exploration=0.0, seed=record.cart_id, explain=0,
        )  # fmt: skip
        mine, theirs = (
            evaluate._expected(judge, row, action, config=config, max_discount=max_discount)
            for action in (choice.plan.describe(), list(record.greedy or ()))
        )
        out.append(mine - theirs)
    return np.asarray(out, dtype=np.float64)


def _unpaired(newest: list[Any], bundle: Any, config: DecisionConfig) -> tuple[float, float, float]:
    """The former check: the candidate's DR value less the running policy's realised mean, with DR's interval."""
    result = evaluate.evaluate(newest, bundle, config, 30)
    dr = next(e for e in result.estimates if e.estimator == "doubly_robust")
    running = [
        evaluate.reward(e, config, 30)
        for e in newest
        if e.record.group == "treated" and not e.record.explored and e.record.propensity
    ]
    mean = float(np.mean(running))
    return dr.value - mean, dr.low - mean, dr.high - mean


def _truth_gaps(
    newest: list[Any], bundle: Any, config: DecisionConfig, truths: dict[str, Any], profile: StoreProfile
) -> np.ndarray:
    """Per comparable decision, the simulator's expected profit of the candidate's plan less the running journey's."""
    economics = config.economics(30)
    plans = config.plans()
    gaps = []
    for example in newest:
        record = example.record
        truth = truths.get(record.cart_id)
        if truth is None or not record.propensity or record.group == "holdout" or not record.greedy:
            continue
        shopper = truth.shopper
        choice = policy.choose(
            bundle, record.features, evaluate._reachable(plans, record.features), order_value=example.value,
            clv=0.0, economics=economics, exploration=0.0, seed=record.cart_id, explain=0,
        )  # fmt: skip
        costs = profile.channel_costs
        mine = expected(
            shopper, touches_of(choice.plan.touches, shopper) or (), margin=profile.margin, channel_costs=costs
        )
        running = touches_of(_journey(record.features[0]).touches, shopper) or ()
        theirs = expected(shopper, running, margin=profile.margin, channel_costs=costs)
        gaps.append((mine.incremental_profit - theirs.incremental_profit) / 100)  # minor units to major
    return np.asarray(gaps)


def _journey(cart_value: float) -> Plan:
    """The default journey (domain.journey.DEFAULT_JOURNEY) that ran the log's other decisions, as a plan."""
    steps = DEFAULT_JOURNEY.steps
    percent = [
        s.incentive.percent if s.incentive and cart_value * 100 >= s.incentive.min_cart_value else 0 for s in steps
    ]
    return plan_of("rules", [Touch(s.delay, s.channels, p) for s, p in zip(steps, percent, strict=True)])


def _log(args: argparse.Namespace, profile: StoreProfile, data_dir: Path) -> tuple[Any, ...]:
    """The exploration log (simulated once, then kept): the examples up to its end, purchasers, truths."""
    saved = kept_run(data_dir, args.days, args.seed, profile, args.exploration)
    truths = {t.cart_id: t for t in saved["shoppers"]}
    engine = build_engine(load_settings(None, data_dir=data_dir))
    try:
        store = engine.stores.named_or_only(None)
        window = engine.settings.rules.recovery_window
        with engine.database.read() as uow:
            found = examples(uow, store.store_id, saved["end"], window)
            purchasers = [s for s in uow.shoppers.all(store.store_id) if s.orders]
    finally:
        engine.close()
    return found, purchasers, truths


if __name__ == "__main__":
    main()
