"""A model on trial: the split of shoppers, the decisions it logs, and the judgement of the profit each side made.

The judgement is tested on logs whose truth is known (each side's chance of an order is set), and its interval's
promise (wrong at most 5 % of the time however often it is looked at) on simulated trials with no true difference.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from cartrecover.decide import features
from cartrecover.decide.experiments import CANDIDATE, RUNNING, trial_arm
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel
from cartrecover.engine import Engine
from cartrecover.entrypoints import models_cli
from cartrecover.errors import ConfigError
from cartrecover.learn import trial
from cartrecover.learn.evaluate import Check
from cartrecover.learn.ope import Estimate
from cartrecover.learn.train import Example
from cartrecover.models.bundle import Bundle
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.settings import load_settings
from tests.conftest import START, Shop, add_shop
from tests.unit.test_learned_decisions import HOUR, abandon, build, decisions

CONFIG = DecisionConfig(channels=(Channel.EMAIL,), margin=0.4)
PLAN = CONFIG.plans()[1]  # one email at 1 h: its channel cost is the same on both sides
VALUE = features.NAMES.index("cart_value")


def trial_log(
    count: int,
    p_candidate: float,
    p_running: float,
    *,
    version: int = 2,
    seed: int = 1,
    every: timedelta = timedelta(minutes=1),
) -> list[Example]:
    """Closed decisions of a 50/50 trial of `version`, `every` apart: each side orders with its own chance; carts of
    20 to 180."""
    rng, found = random.Random(seed), []
    for number in range(count):
        arm = CANDIDATE if rng.random() < 0.5 else RUNNING
        value = rng.uniform(20, 180)
        row = [0.0] * len(features.NAMES)
        row[VALUE] = value
        record = DecisionRecord(
            1, f"c{number}", f"s{number}", START + number * every, "treated", "x", PLAN.name,
            PLAN.describe(), row, features.VERSION, 0.9, trial=version, arm=arm,
        )  # fmt: skip
        ordered = rng.random() < (p_candidate if arm == CANDIDATE else p_running)
        found.append(Example(record, ordered, value))
    return found


def test_a_clearly_better_candidate_is_promoted_and_a_clearly_worse_one_stopped() -> None:
    better = trial.judge(trial_log(6000, 0.40, 0.25), 2, 0.5, CONFIG, 30)
    assert better.verdict == trial.PROMOTE and 0 < better.low < better.difference < better.high
    # the truth: 0.15 more orders of 100 on average at a 40 % margin is 6 per decision
    assert better.low < 6.0 < better.high and better.candidate.decisions + better.running.decisions == 6000
    worse = trial.judge(trial_log(6000, 0.25, 0.40), 2, 0.5, CONFIG, 30)
    assert worse.verdict == trial.STOP and worse.high < 0


def test_a_trial_too_young_or_too_close_to_call_continues() -> None:
    young = trial.judge(trial_log(150, 0.60, 0.10), 2, 0.5, CONFIG, 30)
    assert young.verdict == trial.CONTINUE and "before any verdict" in young.reason
    close = trial.judge(trial_log(3000, 0.31, 0.30), 2, 0.5, CONFIG, 30)
    assert close.verdict == trial.CONTINUE and close.low < 0 < close.high


def test_a_trial_still_undecided_at_its_horizon_goes_to_the_side_with_the_larger_estimate() -> None:
    day = timedelta(days=1)
    for count, p_candidate, p_running, verdict in ((800, 0.32, 0.28, trial.PROMOTE), (1500, 0.26, 0.34, trial.STOP)):
        found = trial_log(count, p_candidate, p_running, every=29 * day / count)  # 29 days of closed decisions
        judged = trial.judge(found, 2, 0.5, CONFIG, 30)
        assert judged.low < 0 < judged.high  # the interval has not decided
        assert judged.verdict == verdict and judged.at_horizon and (judged.difference > 0) == (verdict == trial.PROMOTE)
        assert "horizon (28 days)" in judged.reason and judged.days == pytest.approx(29, abs=0.1)
        assert judged.as_dict()["at_horizon"] is True
        # before the horizon, or with none, it keeps running
        sooner = trial.judge(found[: len(found) * 20 // 29], 2, 0.5, CONFIG, 30)
        assert sooner.verdict == trial.CONTINUE and not sooner.at_horizon
        endless = trial.judge(found, 2, 0.5, replace(CONFIG, trial_days=0), 30)
        assert endless.verdict == trial.CONTINUE and not endless.at_horizon
    # a decided trial is the interval's verdict, whatever its age
    clear = trial.judge(trial_log(6000, 0.40, 0.25, every=40 * day / 6000), 2, 0.5, CONFIG, 30)
    assert clear.verdict == trial.PROMOTE and not clear.at_horizon


def test_only_the_treated_decisions_of_this_trial_count() -> None:
    found = trial_log(400, 0.3, 0.3)
    other = trial_log(300, 0.3, 0.3, version=1, seed=2)
    found[0].record.group = "holdout"
    found[1].record.arm = None
    judged = trial.judge(found + other, 2, 0.5, CONFIG, 30)
    assert judged.candidate.decisions + judged.running.decisions == 398


def test_the_interval_holds_at_every_look_where_a_fixed_one_looked_at_as_often_does_not() -> None:
    """2,000 trials with no true difference, skewed profits (mostly nothing, now and then an order's margin),
    looked at every 50 decisions up to 5,000: the confidence sequence names a winner in at most about 5 % of them;
    the fixed-n 95 % interval, looked at as often, in far more."""
    rng = np.random.default_rng(7)
    trials, n, every = 2000, 5000, 50
    orders = rng.random((trials, n)) < 0.3
    z = np.where(orders, rng.uniform(10, 70, (trials, n)), 0.0) * rng.choice([2.0, -2.0], (trials, n))
    looks = np.arange(every, n + 1, every)
    sums, squares = np.cumsum(z, axis=1)[:, looks - 1], np.cumsum(z * z, axis=1)[:, looks - 1]
    mean = sums / looks
    sd = np.sqrt((squares - looks * mean**2) / (looks - 1))
    sequence = np.array([trial.width(int(t)) for t in looks])
    wrong = (np.abs(mean) > sd * sequence).any(axis=1).mean()
    naive = (np.abs(mean) > sd * 1.96 / np.sqrt(looks)).any(axis=1).mean()
    assert wrong <= 0.06 and naive >= 0.2
    assert 1.3 < trial.width(5000) * math.sqrt(5000) / 1.96 < 2.0  # its price: wider than a fixed interval


def test_the_trial_split_keeps_a_shopper_on_one_side_and_gives_the_candidate_its_share() -> None:
    sides = [trial_arm(1, 3, f"s{i}", 0.3).variant for i in range(4000)]
    assert abs(sides.count(CANDIDATE) / 4000 - 0.3) < 0.03
    assert all(trial_arm(1, 3, f"s{i}", 0.3).variant == sides[i] for i in range(100))
    assert sides != [trial_arm(1, 4, f"s{i}", 0.3).variant for i in range(4000)]  # a new trial splits anew


def on_trial(
    tmp_path: Path, bundle: Bundle, share: float, carts: int, **settings: Any
) -> tuple[Engine, Shop, int, list[str]]:
    """An engine with `bundle` on trial for `share`, and `carts` carts abandoned two minutes apart and decided."""
    engine = build(tmp_path, **settings)
    shop = add_shop(engine)
    with engine.database.write() as uow:
        version = uow.models.add(shop.store_id, START, {}, bundle.to_bytes(), activate=False)
        assert uow.models.start_trial(shop.store_id, version, share)
    abandoned = [abandon(engine, shop, START + i * timedelta(minutes=2)) for i in range(carts)]
    engine.advance_clock(START + 3 * HOUR)
    return engine, shop, version, abandoned


def test_a_model_on_trial_decides_for_its_side_and_every_decision_says_which_side(
    tmp_path: Path, bundle: Bundle
) -> None:
    engine, shop, version, carts = on_trial(tmp_path, bundle, 0.5, 40, decisions=DecisionConfig(exploration=0.0))
    records = [r for r in decisions(engine, shop) if r.group == "treated"]
    assert {r.cart_id for r in records} <= set(carts) and records
    assert all(r.trial == version for r in records)
    by_side = {side: [r for r in records if r.arm == side] for side in (CANDIDATE, RUNNING)}
    assert by_side[CANDIDATE] and by_side[RUNNING]
    assert {r.policy for r in by_side[CANDIDATE]} == {f"learned:v{version}"}
    assert {r.policy for r in by_side[RUNNING]} == {"rules-v1"}
    for record in records:
        assert record.arm == trial_arm(shop.store_id, version, record.shopper_id, 0.5).variant
    with engine.database.read() as uow:
        cart = uow.carts.get(shop.store_id, records[0].cart_id)
    assert cart is not None and (cart.experiment, cart.variant) == (f"model v{version} trial", records[0].arm)

    with engine.database.write() as uow:  # the trial ends: every decision is the running policy's again, unmarked
        assert uow.models.end_trial(shop.store_id) == version
    engine.journeys._trials.clear()  # the 30-second cache, as if it had expired
    later = abandon(engine, shop, START + 4 * HOUR)
    engine.advance_clock(START + 6 * HOUR)
    (after,) = [r for r in decisions(engine, shop) if r.cart_id == later]
    assert (after.policy, after.trial, after.arm) == ("rules-v1", None, None)
    engine.close()


def test_a_trial_leaves_the_holdout_untouched(tmp_path: Path, bundle: Bundle) -> None:
    config = DecisionConfig(exploration=0.0)
    engine, shop, _, _ = on_trial(tmp_path, bundle, 0.5, 60, decisions=config, holdout_share=0.4)
    records = decisions(engine, shop)
    held = [r for r in records if r.group == "holdout"]
    assert held and any(r.arm == CANDIDATE for r in records)  # both the holdout and the trial's sides are here
    with engine.database.read() as uow:
        for record in held:  # never contacted, never on a side of the trial, its cart in no test
            assert (record.plan, record.trial, record.arm) == ("no contact", None, None)
            assert uow.outbox.for_cart(shop.store_id, record.cart_id) == []
            cart = uow.carts.get(shop.store_id, record.cart_id)
            assert cart is not None and cart.experiment is None
    engine.close()


def test_with_the_rules_policy_configured_no_model_decides_and_no_trial_splits(tmp_path: Path, bundle: Bundle) -> None:
    engine, shop, _, _ = on_trial(tmp_path, bundle, 0.9, 10, decisions=DecisionConfig(exploration=0.0, policy="rules"))
    records = [r for r in decisions(engine, shop) if r.group == "treated"]
    assert records and {(r.policy, r.trial, r.arm) for r in records} == {("rules-v1", None, None)}
    engine.close()


def test_the_trial_share_and_horizon_are_read_from_the_config_and_the_environment_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cartrecover.toml"
    config.write_text("[decisions]\ntrial_share = 0.25\ntrial_days = 14\n")
    read = load_settings(config, data_dir=tmp_path).decisions
    assert (read.trial_share, read.trial_days) == (0.25, 14)
    monkeypatch.setenv("CARTRECOVER_DECISIONS_TRIAL_SHARE", "0")
    monkeypatch.setenv("CARTRECOVER_DECISIONS_TRIAL_DAYS", "0")
    read = load_settings(config, data_dir=tmp_path).decisions
    assert (read.trial_share, read.trial_days) == (0.0, 0)
    assert (DecisionConfig().trial_share, DecisionConfig().trial_days) == (0.5, 28)
    with pytest.raises(ConfigError, match="trial_share"):
        DecisionConfig(trial_share=1.0)
    with pytest.raises(ConfigError, match="trial_days"):
        DecisionConfig(trial_days=-1)
    monkeypatch.delenv("CARTRECOVER_DECISIONS_TRIAL_DAYS")
    config.write_text("[decisions]\ntrial_days = 2.5\n")
    with pytest.raises(ConfigError, match="trial_days"):
        load_settings(config, data_dir=tmp_path)


def test_train_first_carries_out_the_trial_s_verdict_promote_or_stop_and_leaves_an_open_one_running(
    tmp_path: Path,
) -> None:
    engine = build(tmp_path)
    shop = add_shop(engine)
    with engine.database.write() as uow:
        first, second = (uow.models.add(shop.store_id, START, {}, b"{}", activate=False) for _ in range(2))
        uow.models.start_trial(shop.store_id, first, 0.5)
    judged = models_cli._judge_trial(engine, shop, trial_log(400, 0.3, 0.3, version=first), apply=True)
    assert judged.verdict == trial.CONTINUE
    with engine.database.read() as uow:
        assert uow.models.trial(shop.store_id) == (first, 0.5) and uow.models.active_version(shop.store_id) is None
    judged = models_cli._judge_trial(engine, shop, trial_log(6000, 0.40, 0.25, version=first), apply=True)
    assert judged.verdict == trial.PROMOTE
    with engine.database.write() as uow:
        assert uow.models.trial(shop.store_id) is None and uow.models.active_version(shop.store_id) == first
        uow.models.start_trial(shop.store_id, second, 0.5)
    judged = models_cli._judge_trial(engine, shop, trial_log(6000, 0.25, 0.40, version=second), apply=True)
    assert judged.verdict == trial.STOP
    with engine.database.read() as uow:
        assert uow.models.trial(shop.store_id) is None and uow.models.active_version(shop.store_id) == first
    assert models_cli._judge_trial(engine, shop, [], apply=True) is None  # no trial: nothing to judge
    engine.close()


def test_a_verdict_is_not_carried_out_on_a_trial_that_changed_while_it_was_judged(tmp_path: Path) -> None:
    engine = build(tmp_path)
    shop = add_shop(engine)
    with engine.database.write() as uow:
        first, second = (uow.models.add(shop.store_id, START, {}, b"{}", activate=False) for _ in range(2))
        uow.models.start_trial(shop.store_id, first, 0.5)
    judge = trial.judge

    def judged_while_someone_replaces_the_trial(*args: Any, **kwargs: Any) -> trial.Judgement:
        with engine.database.write() as uow:  # `models trial stop` then `start`, from another shell
            uow.models.end_trial(shop.store_id)
            uow.models.start_trial(shop.store_id, second, 0.3)
        return judge(*args, **kwargs)

    with mock.patch.object(trial, "judge", judged_while_someone_replaces_the_trial):
        judged = models_cli._judge_trial(engine, shop, trial_log(6000, 0.40, 0.25, version=first), apply=True)
    assert judged.verdict == trial.PROMOTE and judged.version == first  # the old trial's verdict, reported
    with engine.database.read() as uow:  # and not carried out: the new trial runs, nothing was made active
        assert uow.models.trial(shop.store_id) == (second, 0.3) and uow.models.active_version(shop.store_id) is None
    engine.close()


@pytest.mark.parametrize(
    ("flags", "passed", "worse", "share", "state", "active", "on_trial"),
    [
        ({}, True, False, 0.5, "on trial", None, 3),
        ({}, False, False, 0.5, "on trial", None, 3),  # the check could not tell: the trial will
        ({}, False, True, 0.5, "registered, not active: the offline check finds it worse", None, None),
        ({}, True, False, 0.0, "active", 3, None),
        ({}, False, False, 0.0, "registered, not active", None, None),  # no trial: the check decides alone
        ({"force": True}, False, True, 0.5, "active", 3, None),
        ({"force": True}, False, True, 0.0, "active", 3, None),
        ({"no_activate": True}, True, False, 0.5, "registered, not active", None, None),
    ],
)
def test_a_model_goes_on_trial_unless_its_check_finds_it_worse_and_live_only_with_no_trial_share_or_force(
    tmp_path: Path,
    flags: dict[str, bool],
    passed: bool,
    worse: bool,
    share: float,
    state: str,
    active: int | None,
    on_trial: int | None,
) -> None:
    engine = build(tmp_path)
    shop = add_shop(engine)
    args = argparse.Namespace(**({"force": False, "no_activate": False} | flags))
    with engine.database.write() as uow:
        for _ in range(3):
            version = uow.models.add(shop.store_id, START, {}, b"{}", activate=False)
        said = models_cli._deploy(uow, shop.store_id, version, args, passed=passed, worse=worse, share=share)
        assert said.startswith(state)
        assert uow.models.active_version(shop.store_id) == active
        assert (uow.models.trial(shop.store_id) or (None,))[0] == on_trial
    engine.close()


def test_the_check_finds_a_model_worse_only_when_its_whole_interval_is_below_the_running_policy() -> None:
    def estimate(value: float, low: float, high: float) -> Estimate:
        return Estimate("doubly_robust", value, low, high, 2000, 2000.0)

    paired = [(-0.8, -2.8, 1.2, False), (-1.5, -2.9, -0.1, True), (0.4, -1.0, 1.8, False)]
    for value, low, high, worse in paired:
        checked = Check(value > 0, "r", 2000, 3.0, estimate(3.0 + value, 1.0, 5.0), estimate(value, low, high))
        assert checked.worse is worse and checked.metrics()["offline_check_worse"] == float(worse)
    # a log without the running policy's plans: the candidate's interval against what the running policy earned
    assert Check(False, "r", 2000, 3.0, estimate(2.0, 1.0, 2.9)).worse
    assert not Check(False, "r", 2000, 3.0, estimate(2.0, 1.0, 3.1)).worse
    assert not Check(False, "too little data").worse


def test_a_new_model_waits_while_an_undecided_trial_runs(tmp_path: Path) -> None:
    engine = build(tmp_path)
    shop = add_shop(engine)
    args = argparse.Namespace(force=False, no_activate=False)
    with engine.database.write() as uow:
        older, newer = (uow.models.add(shop.store_id, START, {}, b"{}", activate=False) for _ in range(2))
        uow.models.start_trial(shop.store_id, older, 0.5)
        said = models_cli._deploy(uow, shop.store_id, newer, args, passed=True, worse=False, share=0.5)
        assert said.startswith(f"registered, not active: the trial of v{older} is still undecided")
        assert uow.models.trial(shop.store_id) == (older, 0.5)
    engine.close()
