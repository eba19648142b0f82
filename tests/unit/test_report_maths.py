"""The report's figures on cases with known answers: intervals, money, costs, once-only counting."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from scipy import stats

from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import Channel, Incentive, Step, StepStatus
from cartrecover.journey_settings import DEFAULT_ATTRIBUTION_WINDOWS
from cartrecover.measure import CartOutcome, Report, Touch, as_json, as_table, build
from cartrecover.measure.statistics import Interval, difference_of_means, difference_of_proportions
from cartrecover.ports.orders import Order
from tests.conftest import START
from tests.factories import random_id

HOUR = timedelta(hours=1)
Z = 1.959963984540054  # the 97.5 % normal quantile


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson's score interval, from its formula."""
    p = successes / trials
    centre = (p + Z * Z / (2 * trials)) / (1 + Z * Z / trials)
    half = Z / (1 + Z * Z / trials) * math.sqrt(p * (1 - p) / trials + Z * Z / (4 * trials * trials))
    return centre - half, centre + half


def test_40_of_100_against_30_of_100_is_a_difference_of_ten_points_with_newcombe_s_interval() -> None:
    p1, p2 = 0.4, 0.3
    (l1, u1), (l2, u2) = wilson(40, 100), wilson(30, 100)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)

    found = difference_of_proportions(40, 100, 30, 100)

    assert found.estimate == pytest.approx(0.10)
    assert (found.low, found.high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))
    assert found.low == pytest.approx(-0.0319, abs=1e-4) and found.high == pytest.approx(0.2272, abs=1e-4)


@pytest.mark.parametrize(
    ("counts", "published"),
    [((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090))],
)
def test_newcombe_s_published_examples_are_reproduced(
    counts: tuple[int, int, int, int], published: tuple[float, float]
) -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
    found = difference_of_proportions(*counts)

    assert (round(found.low or 0, 4), round(found.high or 0, 4)) == published


def test_welch_s_interval_is_scipy_s_and_matches_its_formula() -> None:
    treated, holdout = [0, 0, 5000, 2500, 0, 12000, 0, 3000], [0, 4000, 0, 0, 0, 1000]

    found = difference_of_means(treated, holdout)
    expected = stats.ttest_ind(treated, holdout, equal_var=False).confidence_interval(0.95)
    v1, v2 = stats.tvar(treated) / len(treated), stats.tvar(holdout) / len(holdout)
    df = (v1 + v2) ** 2 / (v1**2 / (len(treated) - 1) + v2**2 / (len(holdout) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(v1 + v2)
    diff = sum(treated) / len(treated) - sum(holdout) / len(holdout)

    assert found.estimate == pytest.approx(diff)
    assert (found.low, found.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert (found.low, found.high) == (pytest.approx(diff - half), pytest.approx(diff + half))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # SciPy warns of the zero variance it then handles
def test_no_variance_in_either_group_gives_the_difference_itself_as_the_interval() -> None:
    assert difference_of_means([100, 100], [0, 0]) == Interval(100.0, 100.0, 100.0)
    assert difference_of_means([0, 0, 0], [0, 0]) == Interval(0.0, 0.0, 0.0)


# --- the report over carts --------------------------------------------------------------------------------------


def sent(channel: Channel = Channel.EMAIL, name: str = "reminder", coupon: str | None = None, percent: int = 0) -> Step:
    cart_id = random_id("cart")
    return Step(
        step_id=f"{cart_id}#1",
        store_id=1,
        cart_id=cart_id,
        shopper_id="s",
        number=1,
        name=name,
        template="reminder",
        channels=(channel,),
        due_at=START + HOUR,
        incentive=Incentive(percent) if percent else None,
        status=StepStatus.SENT,
        channel=channel,
        coupon=coupon,
        sent_at=START + HOUR,
    )


def outcome(
    group: Group,
    revenue: int | None = None,
    *,
    sends: tuple[Step, ...] = (),
    clicks: tuple[Touch, ...] = (),
    coupons: tuple[str, ...] = (),
    discount: int | None = None,
    value: int = 5000,
) -> CartOutcome:
    order = None
    if revenue is not None:
        order = Order(1, random_id("o"), "s", START + 3 * HOUR, revenue, "USD", (), coupons=coupons, discount=discount)
    return CartOutcome(random_id("cart"), group, value, sends, clicks, order)


def report(outcomes: list[CartOutcome], **costs: str) -> Report:
    return build(
        outcomes,
        store_id=1,
        currency="USD",
        since=START,
        until=START + timedelta(days=1),
        windows=DEFAULT_ATTRIBUTION_WINDOWS,
        channel_cost={k: Decimal(v) for k, v in costs.items()},
    )


def test_groups_rates_and_exact_incremental_revenue_scaled_to_the_treated_carts() -> None:
    treated = [outcome(Group.TREATED, 4000 if i < 40 else None) for i in range(100)]
    holdout = [outcome(Group.HOLDOUT, 3000 if i < 30 else None) for i in range(100)]

    found = report(treated + holdout)

    assert (found.abandoned, found.abandoned_value) == (200, 200 * 5000)
    assert (found.treated.carts, found.treated.recovered, found.treated.revenue) == (100, 40, 160_000)
    assert (found.holdout.carts, found.holdout.recovered, found.holdout.revenue) == (100, 30, 90_000)
    assert found.treated.rate == 0.4 and found.holdout.rate == 0.3
    assert found.incremental is not None
    assert found.incremental.recovery_rate.estimate == pytest.approx(0.10)
    assert found.incremental.revenue == 70_000  # (1600 − 900) per cart × 100 treated carts
    ci = stats.ttest_ind(
        [o.revenue for o in treated], [o.revenue for o in holdout], equal_var=False
    ).confidence_interval(0.95)
    assert found.incremental.revenue_low == round(ci.low * 100)
    assert found.incremental.revenue_high == round(ci.high * 100)
    assert found.net_incremental_revenue == 70_000 and found.roi is None  # nothing spent


def test_the_incremental_revenue_is_rounded_half_even_to_the_minor_unit_from_exact_means() -> None:
    treated = [outcome(Group.TREATED, 1), outcome(Group.TREATED, 0), outcome(Group.TREATED, 0)]
    holdout = [outcome(Group.HOLDOUT, 0)] * 2

    found = report([*treated, *holdout])

    assert found.incremental is not None and found.incremental.revenue == round(Fraction(1, 3) * 3) == 1


def test_no_holdout_gives_not_enough_data_and_the_group_figures_still() -> None:
    found = report([outcome(Group.TREATED, 2500), outcome(Group.TREATED)])

    assert found.incremental is None and found.net_incremental_revenue is None and found.roi is None
    assert found.not_enough_data is not None and found.not_enough_data.startswith("not enough data")
    assert (found.treated.recovered, found.treated.revenue, found.holdout.carts) == (1, 2500, 0)
    assert as_json(found)["incremental"] is None and "not enough data" in as_table(found)


def test_an_empty_window_gives_not_enough_data_and_zeros() -> None:
    found = report([])

    assert (found.abandoned, found.treated.carts, found.treated.rate, found.incremental) == (0, 0, None, None)
    document = as_json(found)
    assert document["abandoned"] == {"carts": 0, "value": 0, "value_display": "0.00"}
    assert document["treated"]["recovery_rate"] is None


def test_incentive_cost_counts_the_discounts_of_orders_that_used_our_codes_only() -> None:
    ours = sent(Channel.SMS, "last-chance", coupon="CR-AB12", percent=10)
    treated = [
        outcome(Group.TREATED, 9000, sends=(ours,), coupons=("cr-ab12",), discount=1000),  # ours, any case
        outcome(Group.TREATED, 9000, sends=(sent(),), coupons=("WELCOME5",), discount=500),  # the shop's own code
        outcome(Group.TREATED),
    ]
    holdout = [outcome(Group.HOLDOUT, 9000), outcome(Group.HOLDOUT)]

    found = report([*treated, *holdout], email="0.001", sms="0.0079")

    assert found.incentive_cost == 1000
    assert found.channel_cost == 1  # 0.001 + 0.0079 = 0.0089 USD: 0.89 cents, rounded half-even once
    assert found.incremental is not None and found.incremental.revenue == 4500  # (6000 − 4500) × 3
    assert found.net_incremental_revenue == 4500 - 1000 - 1
    assert found.roi == Fraction(3499, 1001)
    by_incentive = {r.key: r for r in found.incentives}
    assert by_incentive["10% off"].incentive_cost == 1000 and by_incentive["none"].incentive_cost == 0
    assert as_json(found)["roi"] == "3.4955"


def test_channel_cost_is_summed_over_messages_sent_per_channel_and_step() -> None:
    treated = [outcome(Group.TREATED, sends=(sent(), sent(name="second-reminder"))) for _ in range(1000)]
    treated.append(outcome(Group.TREATED, sends=(sent(Channel.SMS, "last-chance"),)))

    found = report(treated, email="0.001", sms="0.0079")

    assert found.channel_cost == 201  # 2000 × 0.001 + 0.0079 = 2.0079 USD
    rows = {r.key: r for r in found.channels}
    assert (rows["email"].sends, rows["email"].channel_cost, rows["sms"].sends, rows["sms"].channel_cost) == (
        2000,
        200,
        1,
        1,
    )
    assert {r.key: r.sends for r in found.steps} == {"reminder": 1000, "second-reminder": 1000, "last-chance": 1}


def test_last_touch_credits_revenue_per_channel_step_and_incentive_beside_sends_and_clicks() -> None:
    email = sent()
    sms = sent(Channel.SMS, "last-chance", percent=10)
    click = Touch(START + 2 * HOUR, "email", "reminder", email.step_id, True, "none")
    treated = [
        outcome(Group.TREATED, 7000, sends=(email, sms), clicks=(click,)),  # the click wins over the later sms
        outcome(Group.TREATED, 3000, sends=(sms,)),  # no click: the sms sent 2 h before the order
        outcome(Group.TREATED, 2000),  # no touch at all: not credited
    ]

    found = report(treated)

    assert (found.attributed_orders, found.attributed_revenue) == (2, 10_000)
    channels = {r.key: (r.sends, r.clicks, r.orders, r.revenue) for r in found.channels}
    assert channels == {"email": (1, 1, 1, 7000), "sms": (2, 0, 1, 3000)}
    assert {r.key: r.revenue for r in found.incentives} == {"none": 7000, "10% off": 3000}
    assert as_json(found)["channels"][0]["revenue_display"] == "70.00"


def test_the_table_shows_long_step_names_whole_so_that_no_two_rows_read_alike() -> None:
    names = ("email 1h+24h+72h 10% off · 1/3", "email 1h+24h+72h 10% off · 3/3", "reminder")
    found = report([outcome(Group.TREATED, sends=(sent(name=name),)) for name in names])

    lines = as_table(found).splitlines()
    header = next(line for line in lines if line.startswith("step "))
    shown = [line for line in lines if line.startswith(names)]

    assert len(shown) == 3  # each step's row begins with its whole name
    assert {line[: header.index("sends")].rstrip() for line in shown} == set(names)
    assert all(line[: header.index("sends") + 5].endswith("1") for line in shown)  # its sends under "sends"
