"""The learning loop as the demo runs it: explore, `cartrecover train` in its own process, deploy, price with the truth.

A small store and few days, so the model is weak: this checks the loop's plumbing and the pricing's invariants.
Whether the learned policy beats the fixed journey is a benchmark (bench/policy_loop.py, docs/benchmarks.md).
On the embedded stack only: the loop forks its explored store by copying the data directory's SQLite files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from cartrecover.bootstrap import build_engine
from cartrecover.settings import load_settings
from cartrecover.simulate.loop import fixed_plan, run_loop
from cartrecover.simulate.run import START
from cartrecover.simulate.shoppers import StoreProfile


@pytest.mark.slow
def test_the_loop_trains_a_model_deploys_it_and_prices_every_policy_on_the_same_carts(tmp_path: Path) -> None:
    profile = replace(StoreProfile(), shoppers_per_day=400)
    result = run_loop(profile, 3, explore_days=10, eval_days=2, exploration=0.5, data_dir=tmp_path, fixed_run=False)

    assert "model v1 of sim-shop: on trial" in result.training and result.deployed
    engine = build_engine(load_settings(None, data_dir=tmp_path / "learned"))
    try:
        store = engine.stores.named_or_only(None)
        with engine.database.read() as uow:
            assert uow.models.active_version(store.store_id) is None and uow.models.trial(store.store_id) == (1, 0.5)
            records = uow.decisions.between(store.store_id, START, START + timedelta(days=30))
    finally:
        engine.close()
    assert result.deployed_at is not None
    before = [r for r in records if r.at < result.deployed_at and r.group == "treated"]
    after = [r for r in records if r.at >= result.deployed_at and r.group == "treated" and not r.explored]
    assert {r.policy for r in before} == {"rules-v1", "explore"} and {r.trial for r in before} == {None}
    assert {r.trial for r in after} == {1} and {r.arm for r in after} == {"candidate", "running"}
    assert {r.policy for r in after if r.arm == "candidate"} == {"learned:v1"}
    assert {r.policy for r in after if r.arm == "running"} == {"rules-v1"}
    # the learned policy is priced on its side's carts, the running policy on the others
    assert result.carts == sum(result.plans.values()) > 0 and result.running_carts > 0
    # the oracle chooses per shopper among the same candidates, knowing their kind: nothing beats it in expectation
    assert result.oracle.profit >= result.learned.profit - 1e-6
    assert result.oracle.profit >= result.fixed.profit - 1e-6
    assert result.fixed.discount > 0 and result.fixed.messages > result.carts * 0.5

    # the registry and the offline evaluation, as a user reads them
    data = ("--data-dir", str(tmp_path / "learned"))
    (listed,) = json.loads(cli("models", "list", "--json", *data).stdout)
    assert listed["version"] == 1 and not listed["active"] and listed["trial_share"] == 0.5
    assert listed["metrics"]["offline_check_passed"] == 1.0
    assert listed["metrics"]["offline_dr_value"] > listed["metrics"]["offline_running_value"]
    assert "cannot evaluate model v1: no logged decision" in cli("evaluate-policy", *data, check=False).stderr
    later = ("--until", "2031-01-01T00:00:00+00:00")  # the simulated days are in 2030; "now" is before them
    evaluated = json.loads(cli("evaluate-policy", "--json", *later, *data).stdout)
    (dr,) = [e for e in evaluated["estimates"] if e["estimator"] == "doubly_robust"]
    assert evaluated["version"] == 1 and evaluated["decisions"] > 100 and dr["low"] <= dr["value"] <= dr["high"]
    judged = json.loads(cli("models", "trial", "--json", *later, *data).stdout)
    assert judged["version"] == 1 and judged["candidate"]["decisions"] > 0 and judged["running"]["decisions"] > 0
    assert judged["verdict"] in ("promote", "stop", "continue")
    assert "the trial of v1 has ended" in cli("models", "trial", "stop", *data).stdout
    assert "no model on trial" in cli("models", "trial", *data, check=False).stderr
    assert "on trial for 30%" in cli("models", "trial", "start", "1", "--share", "0.3", *data).stdout
    assert "model v1 is active" in cli("models", "activate", "1", *data).stdout
    (listed,) = json.loads(cli("models", "list", "--json", *data).stdout)
    assert listed["active"] and listed["trial_share"] is None  # going live ends the trial
    refused = cli("models", "trial", "start", "1", *data, check=False)
    assert refused.returncode != 0 and "no model v1 that is not the active one" in refused.stderr
    assert "the rule-based journey runs" in cli("models", "activate", "none", *data).stdout
    assert not json.loads(cli("models", "list", "--json", *data).stdout)[0]["active"]
    refused = cli("models", "activate", "7", *data, check=False)
    assert refused.returncode != 0 and "no model v7" in refused.stderr


def test_the_fixed_journey_is_email_else_sms_with_ten_percent_off_on_the_third_touch() -> None:
    plan = fixed_plan({"sms", "email"})
    assert [(t.delay_hours, t.channel, t.percent_off) for t in plan] == [
        (1.0, "email", 0),
        (24.0, "email", 0),
        (72.0, "email", 10),
    ]
    assert {t.channel for t in fixed_plan({"sms"})} == {"sms"} and fixed_plan(()) == ()


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([sys.executable, "-m", "cartrecover", *args], capture_output=True, text=True, check=False)
    if check:
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run
