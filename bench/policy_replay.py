"""A trained model's choices replayed on simulated carts it never saw, each priced with the simulator's truth.

Quicker than the learning loop (bench/policy_loop.py) for comparing learners: one simulated exploration log,
then `learn.train.train` on the decisions of the first `--train-days` (labelled at the end of their recovery
window) and, for every treated decision of the following `--eval-days`, the plan the model's policy would choose
(no exploration) priced with `simulate/truth.expected` next to the fixed "1h / 24h / 72h + 10 %" journey and the
oracle. A `--data-dir` kept from an earlier run (it holds `truth.pickle`) is reused instead of simulating again.
`--discount-weight` and `--caution` are the `[decisions]` settings the replayed policy decides with; several
`--caution` values are replayed in turn on the same trained model (training does not depend on them).

With `--diagnose`, where the model goes wrong: for every email plan, its mean uplift in P(order) and the share
of its orders using its offer, by the model and by the truth, over the replayed carts email reaches; and the
profit the policy leaves against the best policy on what a shop sees (bench/policy_ceiling.py's "signals": per
cart, the plan best on average over the hidden kinds its visible signals imply), by the pair of plans chosen.

    .venv/bin/python bench/policy_replay.py --profile default --visitors 1500 --days 28 --exploration 0.5 \
        [--train-days 21] [--eval-days 7] [--data-dir DIR] [--discount-weight 1] [--caution 0 0.5 1 2] [--diagnose]
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
from cartrecover.decide.actions import NO_CONTACT, for_shopper
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


def log_arguments(parser: argparse.ArgumentParser, *, visitors: int = 300) -> None:
    """The options that say which exploration log to simulate or read (`_log`), and where it is split."""
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--visitors", type=int, default=visitors)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--exploration", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-days", type=int, default=21)
    parser.add_argument("--eval-days", type=int, default=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    log_arguments(parser)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--discount-weight", type=float, default=1.0)
    parser.add_argument("--caution", type=float, nargs="+", default=[0.0])
    parser.add_argument("--diagnose", action="store_true", help="per plan, the model against the truth; see above")
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
        if args.diagnose:
            _diagnose(trained.bundle, later, truths, config, profile)


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
        plans = [p for p in for_shopper(config.plans(), usable) if economics.allows(p)]
        choice = policy.choose(
            bundle, record.features, plans, order_value=shopper.value / 100, clv=0.0, economics=economics,
            exploration=0.0, seed=record.cart_id, explain=0,
        )  # fmt: skip
        chosen[choice.plan.name] += 1
        mine = expected(shopper, touches_of(choice.plan.touches, shopper) or (), margin=margin, channel_costs=costs)
        learned.add(mine.incremental_profit, mine.discount, mine.messages)
        if choice.plan.touches:
            alone = expected(shopper, (), margin=margin, channel_costs=costs).p_order
            terms = bundle.effects.plan_terms(np.asarray([choice.plan.describe()], dtype=np.float64))
            spread = bundle.effects.spread(effects.context_of(np.asarray(record.features)), terms)[0]
            errors.append((choice.chosen.uplift, mine.p_order - alone, float(spread)))
        theirs = expected(shopper, fixed_plan(shopper.channels), margin=margin, channel_costs=costs)
        fixed.add(theirs.incremental_profit, theirs.discount, theirs.messages)
        options = [t for t in (touches_of(p.touches, shopper) for p in candidates) if t is not None]
        top = oracle(shopper, options, margin=margin, channel_costs=costs)[1]
        best.add(top.incremental_profit, top.discount, top.messages)
    return learned, fixed, best, chosen, errors


def _diagnose(
    bundle: Bundle,
    later: Sequence[DecisionRecord],
    truths: dict[str, Any],
    config: DecisionConfig,
    profile: StoreProfile,
) -> None:
    """Print the model's uplift and offer share per email plan next to the truth's, and what the policy leaves
    against the best policy on the visible signals, by (the policy's plan, that policy's plan)."""
    economics = config.economics(30)
    margin, costs = profile.margin, profile.channel_costs
    emails = [p for p in config.plans() if p.first_channel is Channel.EMAIL and economics.allows(p)]
    described = np.asarray([p.describe() for p in emails], dtype=np.float64)
    per_plan: dict[str, list[tuple[float, float, float, float]]] = {p.name: [] for p in emails}
    left: dict[tuple[str, str], list[float]] = {}
    for record in later:
        truth = truths.get(record.cart_id)
        if truth is None or record.group != "treated":
            continue
        shopper, x = truth.shopper, np.asarray(record.features, dtype=np.float64)
        if "email" in shopper.channels:
            alone, p0 = expected(shopper, (), margin=margin, channel_costs=costs).p_order, bundle.no_contact(x)
            outcomes, shares = bundle.outcomes(x, described), bundle.discount_shares(x, described)
            for plan, p, q in zip(emails, outcomes, shares, strict=True):
                e = expected(shopper, touches_of(plan.touches, shopper) or (), margin=margin, channel_costs=costs)
                offered = e.p_order * shopper.value * plan.percent_off / 100
                per_plan[plan.name].append((p - p0, e.p_order - alone, q, e.discount / offered if offered else 0.0))
        named = dict(zip(features.NAMES, record.features, strict=True))
        usable = frozenset(channel for channel, key in REACH if named[key] == 1)
        plans = [NO_CONTACT, *(p for p in for_shopper(config.plans(), usable) if economics.allows(p))]
        choice = policy.choose(
            bundle, record.features, [p for p in plans if p.touches], order_value=shopper.value / 100, clv=0.0,
            economics=economics, exploration=0.0, seed=record.cart_id, explain=0,
        )  # fmt: skip
        kinds = [(replace(shopper, kind=k), w) for k, w in profile.response.kind_shares(shopper.signals).items()]

        def worth(plan: Any, who: Any) -> float:
            touches = touches_of(plan.touches, who) or ()
            return expected(who, touches, margin=margin, channel_costs=costs).incremental_profit

        seen = max(plans, key=lambda p: sum(w * worth(p, who) for who, w in kinds))
        row = left.setdefault((choice.plan.name, seen.name), [0, 0.0, 0.0])
        row[0] += 1
        row[1] += worth(choice.plan, shopper)
        row[2] += worth(seen, shopper)
    print(f"  {'email plan':<26}{'carts':>6}  uplift: model / truth   offer used: model / truth")
    for name, rows in per_plan.items():
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
        offer = f"{a[:, 2].mean():>13.3f} / {a[:, 3].mean():.3f}" if "off" in name else ""
        print(f"  {name:<26}{len(a):>6}  {a[:, 0].mean():>+13.4f} / {a[:, 1].mean():+.4f}  {offer}")
    mine, best = sum(r[1] for r in left.values()), sum(r[2] for r in left.values())
    print(
        f"  against the best policy on the visible signals: {mine:,.0f} of {best:,.0f} ({mine / best:.2f}); the most left:"
    )
    for (chose, could), (n, got, seen_got) in sorted(left.items(), key=lambda kv: kv[1][1] - kv[1][2])[:6]:
        print(f"    {chose:<26} for {could:<26}{int(n):>6} carts  {got:>10,.0f} against {seen_got:>10,.0f}")


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
