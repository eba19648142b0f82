"""The simulator's hidden response model: known answers for lifts, decay, incentives, annoyance and counterfactuals."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cartrecover.simulate.shoppers import Kind, ResponseModel, Shopper, StoreProfile, Touch, load_profile

ABANDONED = datetime(2030, 1, 1, 12, tzinfo=UTC)
MODEL = ResponseModel(
    baseline=0.4,
    lift={"email": 0.2, "sms": 0.3},
    half_life_hours=24,
    lift_per_percent_off=0.01,
    regular_incentive_share=1.0,
    sms_annoyance=0.25,
    stop_probability=0.0,
    idle_click_probability=0.0,
    return_through_message=1.0,
)


def shopper(kind: Kind, u: float, model: ResponseModel = MODEL, own_return_hours: float = 48) -> Shopper:
    baseline = model.baseline_of(kind)
    own = ABANDONED + timedelta(hours=own_return_hours) if u < baseline else None
    return Shopper(1, kind, 10_000, ABANDONED, u, own, model, random.Random(0), probability=baseline, order_at=own)


def touch(hours: float, channel: str = "email", percent_off: int = 0) -> Touch:
    return Touch(ABANDONED + timedelta(hours=hours), channel, percent_off)


def test_a_touch_lifts_by_its_channel_and_the_lift_halves_with_each_half_life() -> None:
    assert MODEL.effect(Kind.REGULAR, touch(0), 0) == pytest.approx(0.2)
    assert MODEL.effect(Kind.REGULAR, touch(24, "sms"), 24) == pytest.approx(0.15)
    assert MODEL.effect(Kind.REGULAR, touch(48), 48) == pytest.approx(0.05)


def test_an_incentive_adds_its_percent_times_the_lift_per_percent() -> None:
    assert MODEL.effect(Kind.REGULAR, touch(0, percent_off=10), 0) == pytest.approx(0.3)


def test_a_regular_shopper_gets_only_their_share_of_an_incentives_lift() -> None:
    model = replace(MODEL, regular_incentive_share=0.25)
    incentive = model.effect(Kind.DISCOUNT_ONLY, touch(0, percent_off=10), 0)
    assert incentive == pytest.approx(0.1)
    assert model.effect(Kind.REGULAR, touch(0, percent_off=10), 0) == pytest.approx(0.2 + 0.25 * incentive)
    assert model.effect(Kind.SMS_ANNOYED, touch(0, percent_off=10), 0) == pytest.approx(0.2 + 0.25 * incentive)


def test_a_discount_only_shopper_moves_only_for_an_incentive_and_never_comes_back_alone() -> None:
    assert MODEL.baseline_of(Kind.DISCOUNT_ONLY) == 0
    assert MODEL.effect(Kind.DISCOUNT_ONLY, touch(0), 0) == 0
    assert MODEL.effect(Kind.DISCOUNT_ONLY, touch(24, percent_off=10), 24) == pytest.approx(0.05)


def test_a_never_shopper_has_no_baseline_and_no_lift() -> None:
    assert MODEL.baseline_of(Kind.NEVER) == 0
    assert MODEL.effect(Kind.NEVER, touch(0, "sms", percent_off=30), 0) == 0


def test_an_sms_lowers_an_annoyed_shoppers_probability_but_an_email_still_helps() -> None:
    assert MODEL.effect(Kind.SMS_ANNOYED, touch(0, "sms"), 0) == pytest.approx(-0.25)
    assert MODEL.effect(Kind.SMS_ANNOYED, touch(0), 0) == pytest.approx(0.2)


def test_a_touch_that_lifts_the_probability_past_u_makes_the_shopper_click_and_order() -> None:
    moved = shopper(Kind.REGULAR, u=0.5)
    reaction = moved.receive(touch(1))
    assert reaction.orders and reaction.click_at is not None and reaction.click_at > touch(1).at
    assert moved.orders and moved.order_at == reaction.click_at and moved.via_click
    assert not moved.counterfactual_orders


def test_a_shopper_above_the_lifted_probability_does_not_order_until_touches_add_up() -> None:
    unmoved = shopper(Kind.REGULAR, u=0.7)
    assert unmoved.receive(touch(0)).click_at is None  # 0.4 + 0.2 = 0.6
    assert not unmoved.orders and not unmoved.counterfactual_orders
    assert unmoved.receive(touch(48)).click_at is None  # + 0.05 (a quarter of 0.2, two days later) = 0.65
    assert unmoved.receive(touch(0, "sms")).orders  # + 0.3 = 0.95: now it adds up


def test_an_sms_loses_the_order_of_an_annoyed_shopper_who_would_have_come_back() -> None:
    annoyed = shopper(Kind.SMS_ANNOYED, u=0.3)
    assert annoyed.orders and annoyed.counterfactual_orders
    annoyed.receive(touch(2, "sms"))
    assert annoyed.probability == pytest.approx(0.15)
    assert not annoyed.orders and annoyed.counterfactual_orders


def test_an_annoyed_shopper_may_text_stop_and_then_ignores_everything() -> None:
    annoyed = shopper(Kind.SMS_ANNOYED, u=0.9, model=ResponseModel(stop_probability=1.0))
    assert annoyed.receive(touch(2, "sms")).stops
    assert annoyed.stopped and annoyed.receive(touch(24, percent_off=50)).click_at is None


def test_a_shopper_coming_back_anyway_may_return_through_the_message_earlier_with_the_same_cart() -> None:
    anyway = shopper(Kind.REGULAR, u=0.1, own_return_hours=48)
    reaction = anyway.receive(touch(1))
    assert reaction.orders and anyway.order_at is not None and anyway.order_at < ABANDONED + timedelta(hours=48)
    assert anyway.counterfactual_orders  # not incremental: they would have bought anyway


def test_with_zero_lift_and_no_annoyance_every_shopper_does_what_they_would_have_done() -> None:
    inert = ResponseModel(lift={}, lift_per_percent_off=0, sms_annoyance=0, idle_click_probability=0)
    for number in range(300):
        drawn = Shopper.draw(number, 5, 1_000, ABANDONED, inert)
        for hours, channel, percent in ((1, "email", 0), (24, "sms", 0), (72, "email", 10)):
            drawn.receive(touch(hours, channel, percent))
        assert drawn.orders == drawn.counterfactual_orders


def test_draws_are_the_same_for_the_same_seed_and_shopper_and_follow_the_kind_shares() -> None:
    first = Shopper.draw(7, 42, 1_000, ABANDONED, MODEL)
    again = Shopper.draw(7, 42, 1_000, ABANDONED, MODEL)
    assert (first.kind, first.u, first.own_return_at) == (again.kind, again.u, again.own_return_at)
    never = ResponseModel(never_share=1.0, discount_only_share=0, sms_annoyed_share=0)
    assert {Shopper.draw(n, 1, 1_000, ABANDONED, never).kind for n in range(50)} == {Kind.NEVER}


def test_own_returns_fall_within_the_recovery_window() -> None:
    model = ResponseModel(baseline=1.0, never_share=0, discount_only_share=0, sms_annoyed_share=0)
    for number in range(200):
        drawn = Shopper.draw(number, 3, 1_000, ABANDONED, model)
        assert drawn.own_return_at is not None
        assert timedelta(hours=1) <= drawn.own_return_at - ABANDONED <= timedelta(hours=model.recovery_window_hours)


def test_kind_shares_over_one_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to"):
        Shopper.draw(1, 1, 1_000, ABANDONED, ResponseModel(never_share=0.6, discount_only_share=0.6))


def test_a_profile_reads_from_toml_and_json_and_refuses_unknown_keys(tmp_path: Path) -> None:
    toml = tmp_path / "store.toml"
    toml.write_text("shoppers_per_day = 50\ncart_sizes = [1.0]\n[response]\nbaseline = 0.0\nlift = { email = 0.3 }\n")
    profile = load_profile(toml)
    assert profile.shoppers_per_day == 50 and profile.cart_sizes == (1.0,)
    assert profile.response.baseline == 0 and profile.response.lift == {"email": 0.3}
    as_json = tmp_path / "store.json"
    as_json.write_text(json.dumps({"holdout_share": 0.5, "response": {"never_share": 0.0}}))
    assert load_profile(as_json).holdout_share == 0.5
    (tmp_path / "bad.toml").write_text("shopers_per_day = 5\n")
    with pytest.raises(ValueError, match="shopers_per_day"):
        load_profile(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="24"):
        StoreProfile(hourly_weights=(1.0,))
