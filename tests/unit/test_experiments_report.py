"""The report per experiment variant: counts, revenue, lift against the holdout and the probability of being best."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from cartrecover.domain.holdout import Group
from cartrecover.journey_settings import DEFAULT_ATTRIBUTION_WINDOWS
from cartrecover.measure import CartOutcome, Report, as_json, as_table, build
from cartrecover.measure.statistics import probability_of_best
from cartrecover.ports.orders import Order
from tests.conftest import START
from tests.factories import random_id

Z = 1.959963984540054


def wilson(successes: int, trials: int) -> tuple[float, float]:
    p = successes / trials
    centre = (p + Z * Z / (2 * trials)) / (1 + Z * Z / trials)
    half = Z / (1 + Z * Z / trials) * math.sqrt(p * (1 - p) / trials + Z * Z / (4 * trials * trials))
    return centre - half, centre + half


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    return p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(u1 - p1, p2 - l2)


def carts(
    n: int, recovered: int, revenue: int, group: Group = Group.TREATED, variant: str | None = None
) -> list[CartOutcome]:
    result = []
    for i in range(n):
        order = None
        if i < recovered:
            order = Order(1, random_id("o"), "s", START + timedelta(hours=3), revenue, "USD", ())
        experiment = "exp" if variant is not None else None
        result.append(CartOutcome(random_id("cart"), group, 5000, (), (), order, experiment, variant))
    return result


def report(outcomes: list[CartOutcome]) -> Report:
    return build(
        outcomes,
        store_id=1,
        currency="USD",
        since=START,
        until=START + timedelta(days=1),
        windows=DEFAULT_ATTRIBUTION_WINDOWS,
        channel_cost={},
    )


def test_each_variant_s_figures_and_lift_are_those_computed_by_hand() -> None:
    outcomes = (
        carts(40, 18, 3000, variant="a")
        + carts(50, 10, 2000, variant="b")
        + carts(10, 3, 1000)  # treated before the experiment: in the totals, in no variant
        + carts(60, 12, 4000, Group.HOLDOUT)
    )

    found = report(outcomes)

    a, b = found.variants
    assert (a.experiment, a.variant, a.carts, a.recovered, a.revenue) == ("exp", "a", 40, 18, 18 * 3000)
    assert (b.experiment, b.variant, b.carts, b.recovered, b.revenue) == ("exp", "b", 50, 10, 10 * 2000)
    assert (a.rate, b.rate) == (18 / 40, 10 / 50)
    assert found.treated.carts == 100 and found.holdout.carts == 60
    assert a.lift is not None and b.lift is not None
    assert a.lift.estimate == pytest.approx(18 / 40 - 12 / 60) and b.lift.estimate == pytest.approx(0.0, abs=1e-12)
    assert (a.lift.low, a.lift.high) == pytest.approx(newcombe(18, 40, 12, 60), abs=1e-9)
    assert (b.lift.low, b.lift.high) == pytest.approx(newcombe(10, 50, 12, 60), abs=1e-9)
    assert a.probability_best + b.probability_best == pytest.approx(1.0)
    assert a.probability_best > 0.99  # 45 % of 40 against 20 % of 50


def test_the_variants_are_in_the_json_and_the_table() -> None:
    found = report(
        carts(40, 18, 3000, variant="a") + carts(50, 10, 2000, variant="b") + carts(60, 12, 4000, Group.HOLDOUT)
    )

    shown = as_json(found)["variants"]
    assert [(v["variant"], v["carts"], v["recovered"], v["revenue"], v["revenue_display"]) for v in shown] == [
        ("a", 40, 18, 54_000, "540.00"),
        ("b", 50, 10, 20_000, "200.00"),
    ]
    assert shown[0]["recovery_rate"] == 0.45 and shown[0]["lift"]["estimate"] == pytest.approx(0.25)
    assert shown[0]["probability_best"] == found.variants[0].probability_best
    table = as_table(found)
    assert "exp / a" in table and "exp / b" in table and "P(best)" in table and "+25.0%" in table


def test_a_variant_with_too_few_carts_or_no_holdout_has_no_lift() -> None:
    found = report(carts(1, 1, 100, variant="a") + carts(5, 1, 100, variant="b"))

    assert [v.lift for v in found.variants] == [None, None]
    assert as_json(found)["variants"][0]["lift"] is None
    assert report(carts(30, 3, 100)).variants == ()


def test_probability_of_being_best_is_near_one_for_a_clearly_better_rate_and_a_half_for_equal_ones() -> None:
    clear = probability_of_best([(60, 100), (20, 100)])
    equal = probability_of_best([(30, 100), (30, 100)])
    three = probability_of_best([(30, 100), (30, 100), (30, 100)])

    assert clear[0] > 0.999 and clear[1] < 0.001
    assert equal == [pytest.approx(0.5, abs=0.02), pytest.approx(0.5, abs=0.02)]  # 20,000 draws: SE 0.0035
    assert three == [pytest.approx(1 / 3, abs=0.02)] * 3
    assert probability_of_best([(60, 100), (20, 100)]) == clear  # seeded: the report does not change on reload
