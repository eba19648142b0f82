"""A trained model's choices replayed on simulated carts it never saw, each priced with the simulator's truth.

Quicker than the learning loop (bench/policy_loop.py) for comparing learners: one simulated exploration log,
then `learn.train.train` on the decisions of the first `--train-days` (labelled at the end of their recovery
window) and, for every treated decision of the following `--eval-days`, the plan the model's policy would choose
(no exploration) priced with `simulate/truth.expected` next to the fixed "1h / 24h / 72h + 10 %" journey and the
oracle. A `--data-dir` kept from an earlier run (it holds `truth.pickle`) is reused instead of simulating again.
`--discount-weight` and `--caution` are the `[decisions]` settings the replayed policy decides with; several
`--caution` values are replayed in turn on the same trained model (training does not depend on them).

    .venv/bin/python bench/policy_replay.py --profile default --visitors 1500 --days 28 --exploration 0.5 \
        [--train-days 21] [--eval-days 7] [--data-dir DIR] [--discount-weight 1] [--caution 0 0.5 1 2]
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cartrecover.bootstrap import build_engine
from cartrecover.decide import features, policy
from cartrecover.decide.actions import reachable
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel
from cartrecover.learn.train import examples, train
from cartrecover.models import effects
from cartrecover.models.bundle import Bundle
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.settings import load_settings
from cartrecover.simulate.loop import Priced, fixed_plan, touches_of
from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.shoppers import PROFILES, StoreProfile
from cartrecover.simulate.truth import expected, oracle

REACH = ((Channel.EMAIL, "email_ok"), (Channel.SMS, "sms_ok"), (Channel.PUSH, "push_ok"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--visitors", type=int, default=300)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--exploration", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-days", type=int, default=21)
    parser.add_argument("--eval-days", type=int, default=7)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--discount-weight", type=float, default=1.0)
    parser.add_argument("--caution", type=float, nargs="+", default=[0.0])
    args = parser.parse_args()
    profile = replace(PROFILES[args.profile], shoppers_per_day=args.visitors)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-replay-"))
    found, purchasers, later, truths, cut = _log(args, profile, data_dir)
    trained = train([e for e in found if e.record.at < cut], purchasers)
    print(f"{len(found)} decisions in the log; data in {data_dir}; discount weight {args.discount_weight}")
    for caution in args.caution:
        config = replace(DecisionConfig(), margin=profile.margin, discount_weight=args.discount_weight, caution=caution)
        learned, fixed, best, chosen, errors = _replay(trained.bundle, later, truths, config, profile)
        print(f"caution {caution}: {sum(chosen.values())} treated carts replayed")
        print(f"  learned {learned.profit:,.0f}   fixed journey {fixed.profit:,.0f}   oracle {best.profit:,.0f}")
        print(
            f"  learned ÷ fixed {learned.profit / fixed.profit:.2f}, ÷ oracle {learned.profit / best.profit:.2f}; "
            f"discounts ÷ fixed {learned.discount / max(fixed.discount, 1):.2f}"
        )
        w = args.discount_weight - 1  # what the shop asked for: profit less (w − 1) × the discounts given
        weighted = (learned.profit - w * learned.discount) / (fixed.profit - w * fixed.discount)
        print(
            f"  discounts: learned {learned.discount:,.0f}, fixed {fixed.discount:,.0f}, oracle {best.discount:,.0f}; "
            f"profit − {w:g} × discounts, learned ÷ fixed {weighted:.2f}"
        )
        print("  plans: " + ", ".join(f"{name} ({n})" for name, n in chosen.most_common(6)))
        model, true, spread = np.asarray(errors).T
        print(
            f"  the {len(model)} contacted carts: uplift by the model {model.mean():+.4f}, by the truth {true.mean():+.4f}; "
            f"spread of the effect (log-odds) median {np.median(spread):.3f}, its correlation with the model's error "
            f"{np.corrcoef(model - true, spread)[0, 1]:+.2f}"
        )


def _replay(
    bundle: Bundle,
    later: Sequence[DecisionRecord],
    truths: dict[str, Any],
    config: DecisionConfig,
    profile: StoreProfile,
) -> tuple[Priced, Priced, Priced, Counter[str], list[tuple[float, float, float]]]:
    """Each treated decision of `later`: the policy's plan, the fixed journey's and the oracle's, priced by the truth;
    and for each contacted cart the chosen plan's uplift by the model and by the truth, and its effect's spread."""
    economics = config.economics(30)
    candidates = [p for p in config.plans() if economics.allows(p)]
    margin, costs = profile.margin, profile.channel_costs
    learned, fixed, best, chosen = Priced(), Priced(), Priced(), Counter[str]()
    errors = []
    for record in later:
        truth = truths.get(record.cart_id)
        if truth is None or record.group != "treated":
            continue
        shopper = truth.shopper
        named = dict(zip(features.NAMES, record.features, strict=True))
        usable = frozenset(channel for channel, key in REACH if named[key] == 1)
        plans = [p for p in config.plans() if p.touches and reachable(p, usable) and economics.allows(p)]
        choice = policy.choose(
            bundle, record.features, plans, order_value=shopper.value / 100, clv=0.0, economics=economics,
            exploration=0.0, seed=record.cart_id, explain=0,
        )  # fmt: skip
        chosen[choice.plan.name] += 1
        mine = expected(shopper, touches_of(choice.plan.touches, shopper) or (), margin=margin, channel_costs=costs)
        learned.add(mine.incremental_profit, mine.discount, mine.messages)
        if choice.plan.touches:
            alone = expected(shopper, (), margin=margin, channel_costs=costs).p_order
            terms = effects.plan_terms(np.asarray([choice.plan.describe()], dtype=np.float64))
            spread = bundle.effects.spread(effects.context_of(np.asarray(record.features)), terms)[0]
            errors.append((choice.chosen.uplift, mine.p_order - alone, float(spread)))
        theirs = expected(shopper, fixed_plan(shopper.channels), margin=margin, channel_costs=costs)
        fixed.add(theirs.incremental_profit, theirs.discount, theirs.messages)
        options = [t for t in (touches_of(p.touches, shopper) for p in candidates) if t is not None]
        top = oracle(shopper, options, margin=margin, channel_costs=costs)[1]
        best.add(top.incremental_profit, top.discount, top.messages)
    return learned, fixed, best, chosen, errors


def kept_run(data_dir: Path, days: int, seed: int, profile: StoreProfile, exploration: float) -> dict[str, Any]:
    """A simulated exploration log in `data_dir`, simulated once and then kept (`truth.pickle`): its start, its end
    and every abandoned cart's truth."""
    kept = data_dir / "truth.pickle"
    if not kept.exists():
        env = {"CARTRECOVER_DECISIONS_EXPLORATION": str(exploration)}
        env["CARTRECOVER_DECISIONS_MARGIN"] = str(profile.margin)
        run = run_simulation(days, seed, profile, data_dir, show=False, progress=True, env=env)
        for truth in run["shoppers"]:
            truth.shopper.rng = None  # a random stream does not pickle usefully
        kept.write_bytes(pickle.dumps({key: run[key] for key in ("start", "end", "shoppers")}))
    saved: dict[str, Any] = pickle.loads(kept.read_bytes())
    return saved


def _log(args: argparse.Namespace, profile: StoreProfile, data_dir: Path) -> tuple[Any, ...]:
    """The exploration log (simulated once, then kept): examples, purchasers, later decisions, truths, the cut."""
    saved = kept_run(data_dir, args.days, args.seed, profile, args.exploration)
    truths = {t.cart_id: t for t in saved["shoppers"]}
    engine = build_engine(load_settings(None, data_dir=data_dir))
    cut = saved["start"] + timedelta(days=args.train_days)
    try:
        store = engine.stores.named_or_only(None)
        window = engine.settings.rules.recovery_window
        with engine.database.read() as uow:
            found = examples(uow, store.store_id, cut + window, window)
            purchasers = [s for s in uow.shoppers.all(store.store_id) if s.orders]
            later = uow.decisions.between(store.store_id, cut, cut + timedelta(days=args.eval_days))
    finally:
        engine.close()
    return found, purchasers, later, truths, cut


if __name__ == "__main__":
    main()
