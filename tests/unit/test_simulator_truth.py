"""The simulator's truth: exact expected outcomes of plans, the oracle, shoppers shaped by what a shop sees."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cartrecover.decide.actions import Touch as ActionTouch
from cartrecover.decide.experiments import CANDIDATE
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel
from cartrecover.ingest.segment import campaign_of, device_of
from cartrecover.simulate import loop
from cartrecover.simulate.compare import Outcome, tally
from cartrecover.simulate.run import START, Simulation, _arrivals
from cartrecover.simulate.shoppers import PROFILES, Kind, ResponseModel, Shopper, Signals, StoreProfile, Touch
from cartrecover.simulate.traffic import Customer, make_visit
from cartrecover.simulate.truth import CartTruth, Expected, PlannedTouch, expected, oracle

ABANDONED = datetime(2030, 1, 1, 12, tzinfo=UTC)
BOTH = frozenset({"email", "sms"})
COSTS = {"email": 0.001, "sms": 0.04}
MODEL = ResponseModel(baseline=0.3, lift={"email": 0.1, "sms": 0.15}, stop_probability=0.6)
ONLY = {  # a model's kind shares that make every drawn shopper of one kind
    Kind.REGULAR: {"discount_only_share": 0.0, "never_share": 0.0, "sms_annoyed_share": 0.0},
    Kind.DISCOUNT_ONLY: {"discount_only_share": 1.0, "never_share": 0.0, "sms_annoyed_share": 0.0},
    Kind.NEVER: {"discount_only_share": 0.0, "never_share": 1.0, "sms_annoyed_share": 0.0},
    Kind.SMS_ANNOYED: {"discount_only_share": 0.0, "never_share": 0.0, "sms_annoyed_share": 1.0},
}
REMINDERS = (PlannedTouch(1, "email"), PlannedTouch(24, "sms"), PlannedTouch(72, "email", 10))
EAGER = (PlannedTouch(0.5, "sms"), PlannedTouch(2, "email", 20), PlannedTouch(3, "email"))


def shopper(
    kind: Kind,
    model: ResponseModel = MODEL,
    *,
    value: int = 10_000,
    signals: frozenset[str] = frozenset(),
    channels: frozenset[str] = BOTH,
) -> Shopper:
    """A shopper of `kind` (their own draws do not matter to the truth)."""
    return Shopper(0, kind, value, ABANDONED, 0.5, None, model, random.Random(0), signals=signals, channels=channels)


def truth(who: Shopper, plan: tuple[PlannedTouch, ...], margin: float = 0.35) -> Expected:
    return expected(who, plan, margin=margin, channel_costs=COSTS)


def simulated_mean(kind: Kind, plan: tuple[PlannedTouch, ...], draws: int) -> tuple[float, float, float]:
    """P(order), mean order total and mean messages over independent shoppers drawn as the simulator draws them."""
    model = replace(MODEL, **ONLY[kind])  # type: ignore[arg-type]
    orders = totals = sent = 0.0
    for number in range(draws):
        drawn = Shopper.draw(number, 99, 10_000, ABANDONED, model, channels=BOTH)
        for step in plan:
            at = ABANDONED + timedelta(hours=step.delay_hours)
            if drawn.order_at is not None and drawn.order_at < at:
                break  # ordered: the engine ends the journey
            drawn.receive(Touch(at, step.channel, step.percent_off))
            sent += 1
        if drawn.orders:
            percent = drawn.won_by.percent_off if drawn.won_by else 0
            orders, totals = orders + 1, totals + 10_000 - round(10_000 * percent / 100)
    return orders / draws, totals / draws, sent / draws


@pytest.mark.parametrize("kind", list(Kind))
def test_the_empty_plan_is_the_no_contact_world(kind: Kind) -> None:
    who = shopper(kind, signals=frozenset({"returning", "checkout"}))
    outcome = truth(who, ())
    assert outcome.p_order == pytest.approx(MODEL.baseline_of(kind, {"returning", "checkout"}))
    assert outcome.revenue == pytest.approx(10_000 * outcome.p_order)
    assert (outcome.discount, outcome.messages, outcome.cost, outcome.incremental_profit) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("kind", "plan"), [(k, p) for k in (Kind.REGULAR, Kind.SMS_ANNOYED, Kind.DISCOUNT_ONLY) for p in (REMINDERS, EAGER)]
)
def test_the_expectation_is_the_mean_of_many_simulated_shoppers(kind: Kind, plan: tuple[PlannedTouch, ...]) -> None:
    draws = 20_000
    p_order, revenue, messages = simulated_mean(kind, plan, draws)
    exact = truth(shopper(kind, replace(MODEL, **ONLY[kind])), plan)  # type: ignore[arg-type]
    error = math.sqrt(max(exact.p_order * (1 - exact.p_order), 1e-4) / draws)
    assert p_order == pytest.approx(exact.p_order, abs=4.5 * error)
    assert revenue == pytest.approx(exact.revenue, abs=4.5 * error * 10_000)
    assert messages == pytest.approx(exact.messages, abs=0.03)


def test_repeated_calls_give_the_same_numbers() -> None:
    who = shopper(Kind.SMS_ANNOYED)
    assert truth(who, EAGER) == truth(who, EAGER) == truth(who, tuple(reversed(EAGER)))


def test_a_discount_to_a_regular_who_would_come_back_alone_lowers_the_incremental_profit() -> None:
    loyal = shopper(Kind.REGULAR, signals=frozenset({"returning", "checkout"}))
    assert loyal.baseline > 0.5
    reminder, coupon = truth(loyal, (PlannedTouch(1, "email"),)), truth(loyal, (PlannedTouch(1, "email", 20),))
    assert coupon.p_order > reminder.p_order  # the discount does win a few more orders…
    assert coupon.discount > 0
    assert coupon.incremental_profit < reminder.incremental_profit  # …but pays it on orders that came anyway
    assert coupon.incremental_profit < 0


def test_a_discount_only_shopper_gains_only_from_incentives() -> None:
    hunter = shopper(Kind.DISCOUNT_ONLY)
    for plan in ((PlannedTouch(1, "email"),), (PlannedTouch(1, "email"), PlannedTouch(2, "sms"))):
        outcome = truth(hunter, plan)
        assert outcome.p_order == 0 and outcome.cost > 0
        assert outcome.incremental_profit == pytest.approx(-outcome.cost)
    offered = truth(hunter, (PlannedTouch(1, "email", 15),))
    assert offered.p_order > 0 and offered.incremental_profit > 0
    assert offered.discount == pytest.approx(offered.p_order * 1_500)


def test_a_never_shopper_only_costs() -> None:
    assert truth(shopper(Kind.NEVER), EAGER).incremental_profit == pytest.approx(-(2 * 0.1 + 4))


def test_touches_on_channels_without_consent_are_skipped_and_touches_after_the_order_are_not_sent() -> None:
    email_only = shopper(Kind.REGULAR, channels=frozenset({"email"}))
    assert truth(email_only, (PlannedTouch(1, "sms", 30),)) == truth(email_only, ())
    late = truth(email_only, (PlannedTouch(200, "email"),))  # after every own return (within 150 h)
    assert late.messages == pytest.approx(1 - MODEL.baseline)


def test_incremental_profit_is_profit_with_the_plan_minus_without_minus_the_messages() -> None:
    who = shopper(Kind.REGULAR)
    outcome = truth(who, REMINDERS, margin=0.4)
    assert (
        0 < outcome.cost < 100 * (2 * COSTS["email"] + COSTS["sms"])
    )  # the last touches go only to those not ordering
    with_plan = 10_000 * 0.4 * outcome.p_order - outcome.discount
    assert outcome.incremental_profit == pytest.approx(with_plan - 10_000 * 0.4 * MODEL.baseline - outcome.cost)


def test_the_oracle_is_at_least_as_good_as_every_candidate() -> None:
    candidates = [(), *((PlannedTouch(d, c, p),) for d in (1, 24) for c in ("email", "sms") for p in (0, 10, 20))]
    candidates += [REMINDERS, EAGER]
    for kind in Kind:
        for signals in (frozenset(), frozenset({"returning"}), frozenset({"deals", "coupon"})):
            who = shopper(kind, signals=signals, value=25_000)
            plan, best = oracle(who, candidates, margin=0.35, channel_costs=COSTS)
            values = [truth(who, c).incremental_profit for c in candidates]
            assert best.incremental_profit == max(values) >= 0 and plan in candidates
    with pytest.raises(ValueError, match="at least one"):
        oracle(shopper(Kind.REGULAR), [], margin=0.35, channel_costs=COSTS)


def test_a_dearer_cart_responds_more_to_the_same_incentive() -> None:
    model = ResponseModel()
    offer = Touch(ABANDONED, "email", 10)
    cheap, dear = (model.effect(Kind.DISCOUNT_ONLY, offer, 0, value) for value in (2_000, 40_000))
    assert 0 < cheap < dear <= 10 * model.lift_per_percent_off * 3


def test_the_kind_mix_shifts_with_the_signals_as_configured() -> None:
    model = ResponseModel()

    def share(kind: Kind, signals: frozenset[str], n: int = 4_000) -> float:
        drawn = (Shopper.draw(i, 3, 5_000, ABANDONED, model, signals=signals).kind for i in range(n))
        return sum(k is kind for k in drawn) / n

    plain = frozenset({"direct", "mobile"})
    assert share(Kind.DISCOUNT_ONLY, frozenset({"deals", "coupon", "mobile"})) > 2 * share(Kind.DISCOUNT_ONLY, plain)
    assert share(Kind.NEVER, frozenset({"direct", "mobile", "brief"})) > 1.5 * share(Kind.NEVER, plain)
    assert share(Kind.SMS_ANNOYED, frozenset({"direct", "desktop"})) > 1.5 * share(Kind.SMS_ANNOYED, plain)
    assert share(Kind.REGULAR, frozenset({"direct", "mobile", "returning"})) > 1.3 * share(Kind.REGULAR, plain)
    assert model.baseline_of(Kind.REGULAR, {"returning", "checkout"}) > 2 * model.baseline_of(Kind.REGULAR, plain)
    assert model.kind_shares({"deals"})[Kind.DISCOUNT_ONLY] > 0.5


def test_the_default_stores_kinds_and_baseline_stay_near_the_old_fixed_shares() -> None:
    profile = PROFILES["default"]
    visits = [v for _, v in _arrivals(Simulation(profile, 1), START, 7) if v.left_at is not None]
    shares = dict.fromkeys(Kind, 0.0)
    baseline = 0.0
    for visit in visits:
        names = visit.signals.names()
        for kind, share in profile.response.kind_shares(names).items():
            shares[kind] += share / len(visits)
            baseline += share * profile.response.baseline_of(kind, names) / len(visits)
    old = {Kind.REGULAR: 0.5, Kind.DISCOUNT_ONLY: 0.15, Kind.NEVER: 0.25, Kind.SMS_ANNOYED: 0.1}
    assert all(abs(shares[kind] - old[kind]) < 0.03 for kind in Kind), shares
    assert baseline == pytest.approx(0.6 * 0.12, abs=0.01)


def test_a_visit_carries_its_device_campaign_and_refused_codes_in_its_segment_calls() -> None:
    deals = StoreProfile(sources={"deals": 1.0}, coupon_share={"deals": 1.0}, cart_share=1.0, buy_now_share=0.0)
    for number in range(40):
        visit = make_visit(deals, random.Random(number), number, ABANDONED, [1_999] * 10)
        agents = {call["context"]["userAgent"] for call in visit.calls}
        assert len(agents) == 1 and device_of(agents.pop()) == visit.signals.device
        assert all(campaign_of(c["context"]["campaign"]) == "couponfollow/affiliate" for c in visit.calls)
        events = [call.get("event") for call in visit.calls]
        entered = events.index("Coupon Entered")
        assert events[entered + 1] == "Coupon Denied" and visit.signals.coupon_tries == events.count("Coupon Entered")
        coupon = visit.calls[entered]["properties"]
        assert coupon["cart_id"] == visit.cart_id and coupon["coupon_id"]
        assert {"deals", "coupon", visit.signals.device} <= visit.signals.names()
    direct = make_visit(replace(deals, sources={"direct": 1.0}), random.Random(1), 1, ABANDONED, [999])
    assert all("campaign" not in call["context"] for call in direct.calls)


def test_both_devices_appear_and_brief_sessions_browse_less() -> None:
    profile = StoreProfile(cart_share=1.0, mobile_share=0.5, brief_share=0.5)
    visits = [make_visit(profile, random.Random(n), n, ABANDONED, [999] * 30) for n in range(300)]
    assert {device_of(v.calls[0]["context"]["userAgent"]) for v in visits} == {"mobile", "desktop"}
    pages = {
        flag: [sum(c["type"] == "page" for c in v.calls) for v in visits if v.signals.brief is flag]
        for flag in (True, False)
    }
    assert max(pages[True]) == 1 and sum(pages[False]) / len(pages[False]) > 2.5


def test_a_returning_customer_signs_in_as_the_customer_who_ordered_before() -> None:
    profile = StoreProfile(cart_share=1.0, sign_in_share=1.0, returning_share=1.0, buy_now_share=0.0)
    customers = [Customer("user-7", "shopper7@sim.example", None)]
    visit = make_visit(profile, random.Random(1), 500, ABANDONED, [999], customers=customers)
    assert customers == [] and visit.user_id == "user-7" and visit.email == "shopper7@sim.example"
    assert visit.signals.returning and visit.channels == {"email"}
    identify = next(c for c in visit.calls if c["type"] == "identify")
    assert identify["userId"] == "user-7" and identify["traits"]["consent"] == {"email": True, "sms": False}


def test_returning_customers_come_from_earlier_orders_and_visitor_numbers_count_days_from_the_start() -> None:
    profile = replace(PROFILES["default"], shoppers_per_day=60)
    first = _arrivals(Simulation(profile, 4), START, 3)
    later = _arrivals(Simulation(profile, 4), START + timedelta(days=3), 2)
    bought = sorted((at, v.user_id) for at, v in first if v.user_id and v.left_at is None)
    returning = [(at, v.user_id) for at, v in first if v.signals.returning]
    assert returning and all(any(u == user and a.date() < at.date() for a, u in bought) for at, user in returning)
    assert {v.number // 100_000 for _, v in later} == {3, 4}
    assert not {v.number for _, v in first} & {v.number for _, v in later}


def test_the_realised_profit_counts_margin_discounts_the_no_contact_orders_and_message_costs() -> None:
    won = Outcome("a", 10_000, counterfactual=False, contacted=2, ordered=True, total=9_000, discount=1_000)
    won.messages = {"email": 1, "sms": 1}
    anyway = Outcome("b", 5_000, counterfactual=True, contacted=1, ordered=True, total=5_000, messages={"email": 1})
    carts = {"a": {"group": "treated"}, "b": {"group": "treated"}}
    summary = tally([won, anyway], carts, {}, margin=0.4, channel_costs=COSTS)
    assert summary["true_incremental_profit"] == pytest.approx(10_000 * 0.4 - 1_000 - 0.1 - 4 - 0.1)
    assert summary["discount_spend"] == 1_000 and summary["message_cost"] == pytest.approx(4.2)
    assert summary["true_incremental_revenue"] == 9_000


def test_the_presets_are_different_stores() -> None:
    fashion, electronics = PROFILES["fashion"], PROFILES["electronics"]
    assert fashion.price_median < PROFILES["default"].price_median < electronics.price_median
    assert fashion.sources["deals"] > electronics.sources["deals"]
    assert fashion.response.discount_only_share > electronics.response.discount_only_share
    assert Signals(returning=True).names() == {"desktop", "direct", "returning"}
    with pytest.raises(ValueError, match="unknown traffic sources"):
        StoreProfile(sources={"tv": 1.0})
    with pytest.raises(ValueError, match="unknown signals or kinds"):
        ResponseModel(kind_odds={"deals": {"bargain_hunter": 2.0}})


def test_the_loop_prices_a_journey_as_its_steps_were_scheduled_and_a_trial_s_running_side_apart() -> None:
    """A candidate plan is priced at its nominal delays; a rule-based journey (no candidate) from the touches its
    steps had, less those the shopper cannot get: not as the fixed journey, which it may not be."""
    hour = timedelta(hours=1)
    who = shopper(Kind.DISCOUNT_ONLY, channels=frozenset({"sms"}))
    journey = (
        ActionTouch(1 * hour, (Channel.EMAIL,), 0),
        ActionTouch(26 * hour, (Channel.SMS, Channel.EMAIL), 15),
    )
    candidate = DecisionConfig().plans()[1]
    decided = {
        "a": loop.Decided("journey: reminder / last-chance", loop.RUNNING, journey),
        "b": loop.Decided(candidate.name, CANDIDATE, ()),
    }
    noon = datetime(2026, 3, 2, 12, tzinfo=UTC)
    truths = [
        CartTruth("a", "treated", who, engine_abandoned_at=noon),
        CartTruth("b", "treated", shopper(Kind.REGULAR), engine_abandoned_at=noon + 2 * hour),
    ]
    result = loop.LoopResult("store", 1, 0)
    loop._price(result, replace(StoreProfile(), margin=0.35), truths, decided)

    costs = StoreProfile().channel_costs
    running = expected(who, (PlannedTouch(26, "sms", 15),), margin=0.35, channel_costs=costs)
    assert result.running_carts == 1 and result.running.profit == pytest.approx(running.incremental_profit)
    assert running.discount > 0  # the discount-only shopper answers the journey's offer, which the fixed one lacks
    touches = loop.touches_of(candidate.touches, truths[1].shopper)
    learned = expected(truths[1].shopper, touches or (), margin=0.35, channel_costs=costs)
    assert result.carts == 1 and result.learned.profit == pytest.approx(learned.incremental_profit)
    assert result.plans == {candidate.name: 1}
    # the trial's truth, on every cart and on those a look at a time counts (abandoned by then)
    gap = learned.incremental_profit - running.incremental_profit
    assert result.trial_difference == pytest.approx(gap) and gap != 0
    assert result.trial_difference_before(noon + 2 * hour) == (pytest.approx(gap), 1, 1)
    before, mine, theirs = result.trial_difference_before(noon + hour)
    assert math.isnan(before) and (mine, theirs) == (0, 1)
