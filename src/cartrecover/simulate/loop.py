"""The learning loop on a simulated store, as a user runs it: explore, `cartrecover train`, deploy, compare.

1. `explore_days` of the store with the rule-based journey and a share of exploring decisions;
2. `cartrecover train` on that log (the engine's own command, in its own process);
3. `eval_days` more days of the same store with the learned policy (exploration back to its default);
4. with `fixed_run`, the same days again on a copy of the data taken before step 3, under the fixed
   "1h / 24h / 72h + 10 %" journey, with the same traffic seed: the same shoppers meet the other policy.

Every policy is then priced on the evaluation days' treated carts with the simulator's exact expectation
(simulate/truth.py): the plan the learned policy really decided for each cart, the fixed journey, and the oracle
that knows each shopper's hidden kind. Expectations remove the noise of who happened to buy; the realised
figures of both runs are reported beside them.

`cartrecover train` puts a model that passed its offline check on trial (`[decisions] trial_share`): it then decides
for that share of the shoppers, the running policy (the rules, exploring) for the others. The learned policy is then
priced on its own side's carts, next to the fixed journey and the oracle on the same carts, and the running side is
priced apart (`running`): the difference per cart between the two sides is the truth the trial's comparison estimates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cartrecover.decide.actions import Touch
from cartrecover.decide.experiments import CANDIDATE, RUNNING
from cartrecover.decision_settings import DecisionConfig
from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.shoppers import Shopper, StoreProfile
from cartrecover.simulate.truth import CartTruth, PlannedTouch, expected, oracle

FIXED_HOURS = (1.0, 24.0, 72.0)
FIXED_PERCENT = 10
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


@dataclass
class Priced:
    """One policy's expected outcome summed over the evaluation's treated carts (minor units)."""

    profit: float = 0.0  # net incremental profit against no contact
    discount: float = 0.0
    messages: float = 0.0

    def add(self, profit: float, discount: float, messages: float) -> None:
        """Count one cart."""
        self.profit += profit
        self.discount += discount
        self.messages += messages


@dataclass(frozen=True)
class CartPrice:
    """One treated cart of the evaluation days: when the engine saw it abandoned, the side of a trial it was on (None
    without one), and the expected incremental profit of what was decided for it (minor units)."""

    abandoned_at: datetime | None
    arm: str | None
    profit: float


@dataclass
class LoopResult:
    """What one loop measured."""

    profile: str
    seed: int
    carts: int  # treated carts of the evaluation days
    learned: Priced = field(default_factory=Priced)
    fixed: Priced = field(default_factory=Priced)
    oracle: Priced = field(default_factory=Priced)
    running: Priced = field(default_factory=Priced)  # with a trial: the running policy on its own side's carts
    running_carts: int = 0
    training: str = ""  # `cartrecover train`'s output
    realised: dict[str, dict[str, float]] = field(default_factory=dict)  # run → the simulator's summary figures
    plans: dict[str, int] = field(default_factory=dict)  # the learned run's plans by name, treated carts
    wall_seconds: float = 0.0
    deployed_at: datetime | None = None  # when the evaluation days began
    priced: list[CartPrice] = field(default_factory=list)  # the sums above, cart by cart (learned and running)

    @property
    def deployed(self) -> bool:
        """Whether `cartrecover train` made the model live or put it on trial (its offline check can refuse it: the
        rules then run)."""
        first = self.training.split("\n", 1)[0]
        return ": active" in first or ": on trial" in first

    @property
    def trial_difference(self) -> float:
        """With a trial: the learned side's expected profit per cart less the running side's (minor units)."""
        return self.trial_difference_before(None)[0]

    def trial_difference_before(self, until: datetime | None) -> tuple[float, int, int]:
        """trial_difference on the carts abandoned before `until` alone (all with None), and how many carts each
        side had there: the truth a look at the trial at that time estimates."""
        sides: dict[str, list[float]] = {CANDIDATE: [], RUNNING: []}
        for cart in self.priced:
            if until is None or (cart.abandoned_at is not None and cart.abandoned_at <= until):
                sides[RUNNING if cart.arm == RUNNING else CANDIDATE].append(cart.profit)
        mine, theirs = sides[CANDIDATE], sides[RUNNING]
        if not mine or not theirs:
            return float("nan"), len(mine), len(theirs)
        return sum(mine) / len(mine) - sum(theirs) / len(theirs), len(mine), len(theirs)

    def ratio(self, what: str) -> float:
        """learned ÷ fixed (profit, discount) or learned ÷ oracle (profit): `what` is one of those three."""
        if what == "oracle":
            return self.learned.profit / self.oracle.profit if self.oracle.profit else float("nan")
        mine, theirs = getattr(self.learned, what), getattr(self.fixed, what)
        return float(mine / theirs) if theirs else float("nan")


def run_loop(
    profile: StoreProfile,
    seed: int,
    *,
    explore_days: int,
    eval_days: int,
    exploration: float = 0.3,
    data_dir: Path | None = None,
    fixed_run: bool = True,
    progress: bool = False,
    say: Callable[[str], None] = lambda _: None,
    decisions: Mapping[str, str] | None = None,
) -> LoopResult:
    """Explore, train, deploy and compare on one store profile (see the module's docstring). `decisions` are more
    `[decisions]` settings of the learning store (e.g. {"discount_weight": "3"}), for its training too."""
    base = data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-loop-"))
    base.mkdir(parents=True, exist_ok=True)
    margin = {"CARTRECOVER_DECISIONS_MARGIN": str(profile.margin)}  # the store tells the engine its margin
    margin |= {f"CARTRECOVER_DECISIONS_{key.upper()}": value for key, value in (decisions or {}).items()}
    say(f"1/3 exploring: {explore_days} days, {exploration:.0%} of decisions explore, the rules decide the rest")
    explore_env = {**margin, "CARTRECOVER_DECISIONS_EXPLORATION": str(exploration)}
    first = run_simulation(
        explore_days, seed, profile, base / "learned", show=False, progress=progress, env=explore_env
    )
    if fixed_run:
        shutil.copytree(base / "learned", base / "fixed")
    say("2/3 cartrecover train")
    command = [sys.executable, "-m", "cartrecover", "train", "--data-dir", str(base / "learned")]
    training = subprocess.run(
        [*command, "--until", first["end"].isoformat()],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **margin},  # the offline check weighs profit with the store's own settings
    )
    if training.returncode != 0:
        raise RuntimeError(f"cartrecover train failed: {training.stderr.strip() or training.stdout.strip()}")
    say(
        f"3/3 deploying the model: {eval_days} days"
        + (", and the same days under the fixed journey" if fixed_run else "")
    )
    common: dict[str, Any] = {"keys": first["keys"], "start": first["end"], "show": False, "progress": progress}
    later = seed + 1000
    learned = run_simulation(eval_days, later, profile, base / "learned", env=margin, **common)
    result = LoopResult(profile.name, seed, 0, training=training.stdout, deployed_at=first["end"])
    result.realised["learned"] = _realised(learned)
    if fixed_run:
        config = base / "fixed.toml"
        config.write_text(FIXED_JOURNEY)
        fixed_env = {"CARTRECOVER_DECISIONS_POLICY": "rules", "CARTRECOVER_DECISIONS_EXPLORATION": "0"}
        fixed_env |= {"CARTRECOVER_CONFIG": str(config)}
        result.realised["fixed"] = _realised(
            run_simulation(eval_days, later, profile, base / "fixed", env=fixed_env, **common)
        )
    _price(result, profile, learned["shoppers"], _decided_plans(base / "learned", learned))
    result.wall_seconds = first["wall_seconds"] + learned["wall_seconds"]
    return result


def fixed_plan(channels: Iterable[str]) -> tuple[PlannedTouch, ...]:
    """The fixed journey for a shopper: email, else SMS; 10 % off on the third touch."""
    usable = set(channels)
    channel = "email" if "email" in usable else "sms" if "sms" in usable else None
    if channel is None:
        return ()
    return tuple(PlannedTouch(h, channel, FIXED_PERCENT if h == FIXED_HOURS[-1] else 0) for h in FIXED_HOURS)


def _realised(summary: dict[str, Any]) -> dict[str, float]:
    keys = ("true_incremental_profit", "discount_spend", "message_cost")
    return {key: float(summary[key]) for key in keys}


@dataclass(frozen=True)
class Decided:
    """What the engine decided for a cart during the evaluation days: its plan's name, the side of a trial it was
    on (None without one), and the touches its steps were scheduled with (for a journey, which is no candidate)."""

    plan: str
    arm: str | None
    touches: tuple[Touch, ...]


def _decided_plans(data_dir: Path, summary: dict[str, Any]) -> dict[str, Decided]:
    """Cart id → what the engine decided for it during the evaluation days (its decision log and its steps)."""
    from cartrecover.bootstrap import build_engine
    from cartrecover.settings import load_settings

    engine = build_engine(load_settings(None, data_dir=data_dir))
    try:
        store = engine.stores.named_or_only(None)
        with engine.database.read() as uow:
            records = [
                r
                for r in uow.decisions.between(store.store_id, summary["start"], summary["end"])
                if r.group == "treated"
            ]
            steps = uow.outbox.for_carts(store.store_id, {r.cart_id for r in records})
    finally:
        engine.close()
    decided = {}
    for r in records:  # a cart decided twice keeps its last decision, and the steps scheduled from it
        planned = [s for s in steps.get(r.cart_id, []) if s.due_at >= r.at]
        touches = tuple(Touch(s.due_at - r.at, s.channels, s.incentive.percent if s.incentive else 0) for s in planned)
        decided[r.cart_id] = Decided(r.plan, r.arm, touches)
    return decided


def touches_of(plan_touches: Iterable[Any], shopper: Shopper) -> tuple[PlannedTouch, ...] | None:
    """An engine plan as the truth's touches, on the first of each touch's channels the shopper can get."""
    found = []
    for touch in plan_touches:
        channel = next((c.value for c in touch.channels if c.value in shopper.channels), None)
        if channel is None:
            return None
        found.append(PlannedTouch(touch.delay.total_seconds() / 3600, channel, touch.percent_off))
    return tuple(found)


def _price(result: LoopResult, profile: StoreProfile, truths: list[CartTruth], decided: dict[str, Decided]) -> None:
    config = replace(DecisionConfig(), margin=profile.margin)
    economics = config.economics(30)
    plans = {p.name: p for p in config.plans()}
    allowed = [p for p in plans.values() if economics.allows(p)]
    margin, costs = profile.margin, profile.channel_costs
    for truth in truths:
        found = decided.get(truth.cart_id)
        if truth.group != "treated" or found is None:
            continue
        shopper, name = truth.shopper, found.plan
        plan = plans.get(name)  # a candidate at its nominal delays; a journey as its steps were scheduled,
        usable = [t for t in found.touches if any(c.value in shopper.channels for c in t.channels)]
        touches = touches_of(plan.touches if plan is not None else usable, shopper)  # less those it cannot send
        mine = expected(shopper, touches or (), margin=margin, channel_costs=costs)
        result.priced.append(CartPrice(truth.engine_abandoned_at, found.arm, mine.incremental_profit))
        if found.arm == RUNNING:  # the running policy's side of a trial: priced apart
            result.running_carts += 1
            result.running.add(mine.incremental_profit, mine.discount, mine.messages)
            continue
        result.carts += 1
        result.plans[name] = result.plans.get(name, 0) + 1
        result.learned.add(mine.incremental_profit, mine.discount, mine.messages)
        theirs = expected(shopper, fixed_plan(shopper.channels), margin=margin, channel_costs=costs)
        result.fixed.add(theirs.incremental_profit, theirs.discount, theirs.messages)
        candidates = [t for t in (touches_of(p.touches, shopper) for p in allowed) if t is not None]
        _, best = oracle(shopper, candidates, margin=margin, channel_costs=costs)
        result.oracle.add(best.incremental_profit, best.discount, best.messages)
