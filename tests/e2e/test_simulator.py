"""`cartrecover simulate` end to end: simulated shoppers against a real engine on the manual clock.

Each run starts its own `cartrecover serve --clock manual` on 127.0.0.1 and stops it. Every test runs on both
stacks, each simulation on a fresh one: the short run's checks (the engine's carts and report against the
simulated truth), the same seed giving the same figures on either, the runs whose truth is known by construction
(no lift, no baseline), and the truth inside the report's interval for most of a few seeds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.shoppers import ResponseModel, StoreProfile
from tests.e2e.conftest import EMBEDDED, on_both_stacks, open_stack

pytestmark = on_both_stacks

SMALL = StoreProfile(shoppers_per_day=70, holdout_share=0.3, sign_in_share=0.9, email_consent_share=0.9)


def simulate(stack_name: str, data_dir: Path, **options: Any) -> dict[str, Any]:
    """`run_simulation(**options)` on `data_dir` against an engine on a fresh stack of that name."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # The simulator runs `cartrecover stores add` and `serve` as a user would: they read the stack from the
    # environment.
    with open_stack(stack_name, data_dir) as stack, pytest.MonkeyPatch.context() as env:
        for name, value in stack.variables.items():
            env.setenv(name, value)
        summary = run_simulation(data_dir=data_dir, **options)
    assert (data_dir / "cartrecover.db").exists() == (stack is EMBEDDED)  # the engine ran on the stack it was given
    return summary


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory, stack_name: str) -> dict[str, Any]:
    return simulate(stack_name, tmp_path_factory.mktemp("sim"), days=3, seed=11, profile=SMALL, progress=False)


def test_a_short_run_finishes_with_both_groups_and_their_counts_consistent(short_run: dict[str, Any]) -> None:
    groups = short_run["groups"]
    assert set(groups) == {"treated", "holdout"}  # every abandoned cart got a group from the engine
    for row in groups.values():
        assert 0 < row["abandoned"] == row["engine_abandoned"] == row["report_carts"]
        assert row["recovered"] <= row["abandoned"] and row["clicked"] <= row["contacted"] <= row["abandoned"]
    assert groups["treated"]["contacted"] > 0
    assert groups["holdout"]["contacted"] == groups["holdout"]["clicked"] == 0


def test_every_cart_reaches_the_status_its_simulated_traffic_implies(short_run: dict[str, Any]) -> None:
    assert short_run["mismatches"] == []


def test_the_reports_recovered_orders_and_revenue_are_the_simulated_orders_and_their_totals(
    short_run: dict[str, Any],
) -> None:
    for row in short_run["groups"].values():
        assert row["recovered"] == row["engine_recovered"] == row["report_recovered"]
        assert row["revenue"] == row["report_revenue"]  # order totals after discounts, as sent
    assert short_run["groups"]["treated"]["recovered"] > 0


def test_the_holdouts_two_worlds_are_the_same(short_run: dict[str, Any]) -> None:
    holdout = short_run["groups"]["holdout"]
    assert holdout["revenue"] == holdout["counterfactual_revenue"] and holdout["discount"] == 0


def test_the_comparison_says_whether_the_truth_is_inside_the_reports_interval(short_run: dict[str, Any]) -> None:
    estimate, truth = short_run["estimate"], short_run["true_incremental_revenue"]
    report = short_run["report"]["incremental"]
    assert (estimate["revenue"], estimate["low"], estimate["high"]) == (
        report["revenue"],
        report["revenue_low"],
        report["revenue_high"],
    )
    assert estimate["inside"] == (estimate["low"] <= truth <= estimate["high"])


def test_the_same_seed_gives_the_same_truth_and_the_same_engine_figures_on_either_stack(
    short_run: dict[str, Any], tmp_path: Path
) -> None:
    # Again, on the embedded stack.
    again = run_simulation(days=3, seed=11, profile=SMALL, data_dir=tmp_path, show=False, progress=False)
    assert again["groups"] == short_run["groups"]
    assert again["true_incremental_revenue"] == short_run["true_incremental_revenue"]
    assert again["estimate"] == short_run["estimate"]


def test_with_no_lift_the_engine_earns_nothing_and_loses_the_discounts_it_gave(stack_name: str, tmp_path: Path) -> None:
    inert = ResponseModel(lift={}, lift_per_percent_off=0, sms_annoyance=0)
    summary = simulate(stack_name, tmp_path, days=2, seed=5, profile=replace(SMALL, response=inert))
    treated = summary["groups"]["treated"]
    assert treated["contacted"] > 0 and treated["recovered"] > 0  # not vacuous: messages went out, orders came
    assert summary["true_incremental_revenue"] == -treated["discount"]
    assert treated["revenue"] == treated["counterfactual_revenue"] - treated["discount"]


def test_with_no_baseline_the_holdout_never_buys_and_every_treated_order_is_incremental(
    stack_name: str, tmp_path: Path
) -> None:
    eager = ResponseModel(baseline=0.0, lift={"email": 0.5, "sms": 0.5}, never_share=0.1)
    summary = simulate(stack_name, tmp_path, days=2, seed=6, profile=replace(SMALL, response=eager))
    holdout, treated = summary["groups"]["holdout"], summary["groups"]["treated"]
    assert holdout["recovered"] == holdout["revenue"] == 0
    assert treated["revenue"] > 0
    assert summary["true_incremental_revenue"] == treated["revenue"]


def test_the_true_incremental_revenue_lies_inside_the_reports_interval_for_most_seeds(
    stack_name: str, tmp_path: Path
) -> None:
    """A few seeds of the default store; bench/coverage.py runs many (docs/benchmarks.md)."""
    runs = [
        simulate(stack_name, tmp_path / str(seed), days=5, seed=seed, show=False, progress=False) for seed in (1, 2, 3)
    ]
    assert all(run["estimate"]["inside"] is not None for run in runs)  # every run had an interval
    assert sum(run["estimate"]["inside"] for run in runs) >= 2, [
        (run["true_incremental_revenue"], run["estimate"]) for run in runs
    ]
