"""Experiments: config, fixed splits kept on the shopper, Thompson sampling on finished carts, logged propensities.

Journeys run through the engine on the manual clock with a recording channel (as in test_journeys).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cartrecover import measure
from cartrecover.bootstrap import make_clock, open_database, open_event_log
from cartrecover.decide.experiments import by_weight, thompson
from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.engine import Engine
from cartrecover.errors import ConfigError
from cartrecover.experiment_settings import ExperimentConfig, parse_experiments
from cartrecover.journey_settings import DEFAULT_ATTRIBUTION_WINDOWS
from cartrecover.settings import load_settings, parse_duration
from tests.conftest import START, Shop, add_shop, make_settings
from tests.factories import Recorder, identified, item, order_completed, product_added, random_id

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def experiments(*tables: dict[str, Any]) -> tuple[ExperimentConfig, ...]:
    return parse_experiments(list(tables), parse_duration)


def one_step(name: str, delay: str, template: str = "reminder", **extra: Any) -> list[dict[str, Any]]:
    return [{"name": name, "delay": delay, "channels": ["email"], "template": template, **extra}]


SUBJECT_TEST = {
    "name": "timing",
    "assignment": "fixed",
    "variants": [
        {"name": "fast", "weight": 3, "steps": one_step("fast-reminder", "30m")},
        {"name": "slow", "weight": 1, "steps": one_step("slow-reminder", "3h", "incentive", incentive={"percent": 5})},
    ],
}
BANDIT = {
    "name": "bandit",
    "assignment": "thompson",
    "variants": [
        {"name": "a", "steps": one_step("a-reminder", "1h")},
        {"name": "b", "steps": one_step("b-reminder", "1h")},
    ],
}


@pytest.fixture
def email() -> Recorder:
    return Recorder()


def build(tmp_path: Path, email: Recorder, **overrides: Any) -> Engine:
    settings = make_settings(tmp_path, **overrides)
    return Engine(
        settings,
        open_database(settings),
        open_event_log(settings),
        make_clock(settings, START),
        senders={"email": email, "sms": email},
        secret=b"test-secret",
    )


@pytest.fixture
def engine(tmp_path: Path, email: Recorder) -> Iterator[Engine]:
    built = build(tmp_path, email, experiments=experiments(SUBJECT_TEST))
    yield built
    built.close()


def abandon(engine: Engine, shop: Shop, anon: str, at: datetime = START, cart_id: str | None = None) -> str:
    """A shopper with an email and consent puts something in a cart at `at`; returns the cart id."""
    cart_id = cart_id or random_id("cart")
    engine.append(
        [
            identified(
                store_id=shop.store_id, anonymous_id=anon, email=f"{anon}@example.com", consent={"email": True}, at=at
            ),
            product_added(item("p1", price=2500), store_id=shop.store_id, anonymous_id=anon, cart_id=cart_id, at=at),
        ]
    )
    return cart_id


def cart_of(engine: Engine, shop: Shop, cart_id: str) -> Cart:
    with engine.database.read() as uow:
        cart = uow.carts.get(shop.store_id, cart_id)
    assert cart is not None
    return cart


def decision(engine: Engine, shop: Shop, cart_id: str) -> dict[str, Any]:
    with engine.database.read() as uow:
        entries = [e for e in uow.timeline.for_cart(shop.store_id, cart_id) if e["kind"] == "decision"]
    return entries[-1]


# --- config ---------------------------------------------------------------------------------------------------


def test_experiments_are_read_from_the_config_file_and_a_store_s_own_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "cartrecover.toml"
    path.write_text(
        """
[[experiments]]
name = "everyone"
[[experiments.variants]]
name = "control"
[[experiments.variants]]
name = "sms-first"
weight = 2.5
[[experiments.variants.steps]]
name = "nudge"
delay = "20m"
channels = ["sms", "email"]
template = "reminder"

[[experiments]]
name = "mine"
store = "my-shop"
assignment = "thompson"
[[experiments.variants]]
name = "a"
[[experiments.variants]]
name = "b"
"""
    )
    settings = load_settings(path, env={})

    everyone = settings.experiment_for("another-shop")
    assert everyone is not None and everyone.name == "everyone" and everyone.assignment == "fixed"
    control, sms_first = everyone.variants
    assert (control.weight, control.journey) == (1.0, None)  # no steps: the store's own journey
    assert sms_first.weight == 2.5 and sms_first.journey is not None
    (step,) = sms_first.journey.for_currency("USD").steps
    assert (step.name, step.delay, [c.value for c in step.channels]) == (
        "nudge",
        timedelta(minutes=20),
        ["sms", "email"],
    )
    mine = settings.experiment_for("my-shop")
    assert mine is not None and (mine.name, mine.assignment) == ("mine", "thompson")
    assert load_settings(None, env={}).experiment_for("my-shop") is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "x", "variants": [{"name": "a"}]}, "at least two variants"),
        ({"variants": [{"name": "a"}, {"name": "b"}]}, "a name is required"),
        ({"name": "x", "assignment": "random", "variants": [{"name": "a"}, {"name": "b"}]}, "fixed, thompson"),
        ({"name": "x", "variants": [{"name": "a"}, {"name": "a"}]}, "variant names must differ"),
        ({"name": "x", "variants": [{"name": "a", "weight": 0}, {"name": "b"}]}, "weight must be a number above 0"),
        ({"name": "x", "variants": [{"name": "a", "weight": "1"}, {"name": "b"}]}, "weight must be a number above 0"),
        ({"name": "x", "variants": [{"name": "a", "wieght": 2}, {"name": "b"}]}, "unknown settings wieght"),
        ({"name": "x", "split": "50/50", "variants": [{"name": "a"}, {"name": "b"}]}, "unknown settings split"),
        ({"name": "x", "variants": [{"name": "a", "steps": [{"name": "s"}]}, {"name": "b"}]}, "a delay is required"),
        ({"name": "x", "variants": [{"name": "a", "steps": []}, {"name": "b"}]}, "non-empty"),
        (
            {"name": "x", "variants": [{"name": "a", "steps": one_step("s", "1h", channels=["fax"])}, {"name": "b"}]},
            "variant 'a': journey step s",
        ),
        (
            {"name": "x", "variants": [{"name": "a", "steps": one_step("s", "soon")}, {"name": "b"}]},
            "not a duration",
        ),
        (
            {"name": "x", "variants": [{"name": "a", "steps": one_step("s", "1h", incentive={})}, {"name": "b"}]},
            "a step is malformed",
        ),
    ],
)
def test_a_bad_experiment_is_refused_with_a_message_naming_it(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        experiments(table)


def test_a_store_runs_one_experiment_at_a_time() -> None:
    pair = [{"name": "a"}, {"name": "b"}]
    with pytest.raises(ConfigError, match="store 'shop' has 2 experiments"):
        experiments({"name": "x", "store": "shop", "variants": pair}, {"name": "y", "store": "shop", "variants": pair})
    with pytest.raises(ConfigError, match="all stores has 2 experiments"):
        experiments({"name": "x", "variants": pair}, {"name": "y", "variants": pair})


# --- fixed splits -----------------------------------------------------------------------------------------------


def test_fixed_splits_land_near_their_weights_and_log_the_weight_share() -> None:
    weights = {"a": 1.0, "b": 2.0, "c": 5.0}
    chosen = [by_weight(7, "exp", f"shopper-{n}", weights) for n in range(16_000)]

    counts = Counter(a.variant for a in chosen)
    # expected 2000, 4000 and 10000; the bounds are over 5 standard deviations wide
    assert 1800 <= counts["a"] <= 2200 and 3700 <= counts["b"] <= 4300 and 9700 <= counts["c"] <= 10300
    assert {a.variant: a.probability for a in chosen} == {"a": 1 / 8, "b": 2 / 8, "c": 5 / 8}
    assert [a.variant for a in chosen] == [by_weight(7, "exp", f"shopper-{n}", weights).variant for n in range(16_000)]
    assert any(by_weight(8, "exp", f"s{n}", weights).variant != a.variant for n, a in enumerate(chosen[:50]))


def test_each_treated_cart_gets_its_variant_s_journey_and_the_decision_logs_the_share(
    engine: Engine, email: Recorder
) -> None:
    shop = add_shop(engine)
    carts = {abandon(engine, shop, f"anon-{n}"): f"anon-{n}@example.com" for n in range(80)}

    engine.advance_clock(START + 4 * HOUR)

    seen = Counter()
    for cart_id, address in carts.items():
        cart = cart_of(engine, shop, cart_id)
        made = decision(engine, shop, cart_id)
        assert cart.experiment == "timing" and cart.variant in ("fast", "slow")
        share = 0.75 if cart.variant == "fast" else 0.25
        assert cart.assignment_probability == made["propensity"] == share
        assert made["policy"] == f"rules-v1+experiment:timing/{cart.variant}"
        (step,) = made["steps"]
        assert step["step"] == f"{cart.variant}-reminder"
        assert step["due_at"] == cart.abandoned_at + (30 * timedelta(minutes=1) if cart.variant == "fast" else 3 * HOUR)
        assert step["incentive_percent"] == (5 if cart.variant == "slow" else None)
        assert [m.to for m in email.sent].count(address) == 1
        seen[cart.variant] += 1
    assert seen["fast"] > seen["slow"] > 0


def test_the_variant_is_kept_on_the_shopper_and_their_next_cart_gets_it_again(engine: Engine) -> None:
    shop = add_shop(engine)
    first = abandon(engine, shop, "returning")
    engine.advance_clock(START + 2 * HOUR)
    with engine.database.write() as uow:
        cart = uow.carts.get(shop.store_id, first)
        assert cart is not None
        shopper = uow.shoppers.get(shop.store_id, cart.shopper_id)
        assert shopper is not None and shopper.experiments == {"timing": cart.variant}
        other = "slow" if cart.variant == "fast" else "fast"
        shopper.experiments["timing"] = other  # as if a merge had brought an older shopper's variant
        uow.shoppers.save(shopper)

    second = abandon(engine, shop, "returning", at=START + 3 * HOUR)
    engine.advance_clock(START + 5 * HOUR)

    again = cart_of(engine, shop, second)
    assert again.variant == other and again.assignment_probability == (0.75 if other == "fast" else 0.25)


def test_holdout_shoppers_are_never_in_an_experiment(tmp_path: Path, email: Recorder) -> None:
    engine = build(tmp_path, email, holdout_share=0.5, experiments=experiments(SUBJECT_TEST))
    shop = add_shop(engine)
    carts = [abandon(engine, shop, f"anon-{n}") for n in range(60)]
    engine.advance_clock(START + 4 * HOUR)

    found = [cart_of(engine, shop, c) for c in carts]
    held = [c for c in found if c.group == "holdout"]
    assert 10 <= len(held) <= 50
    for cart in held:
        assert (cart.experiment, cart.variant, cart.assignment_probability) == (None, None, None)
        assert decision(engine, shop, cart.cart_id)["policy"] == "holdout"
    with engine.database.read() as uow:
        for cart in held:
            shopper = uow.shoppers.get(shop.store_id, cart.shopper_id)
            assert shopper is not None and shopper.experiments == {}
    assert all(c.variant is not None for c in found if c.group == "treated")
    engine.close()


def test_an_experiment_for_another_store_leaves_this_store_s_journey_alone(tmp_path: Path, email: Recorder) -> None:
    engine = build(tmp_path, email, experiments=experiments({**SUBJECT_TEST, "store": "elsewhere"}))
    shop = add_shop(engine)
    cart_id = abandon(engine, shop, "anon")
    engine.advance_clock(START + HOUR)

    made = decision(engine, shop, cart_id)
    assert made["policy"] == "rules-v1" and "propensity" not in made
    assert cart_of(engine, shop, cart_id).experiment is None
    engine.close()


# --- Thompson sampling ------------------------------------------------------------------------------------------


def best_share(counts: dict[str, tuple[int, int]], variant: str, draws: int = 400_000) -> float:
    """An independent estimate of P(variant's posterior draw is the highest)."""
    rng = np.random.default_rng(12345)
    names = list(counts)
    samples = np.column_stack([rng.beta(1 + w, 1 + lost, draws) for w, lost in counts.values()])
    return float(np.mean(samples.argmax(axis=1) == names.index(variant)))


def test_thompson_logs_the_monte_carlo_share_and_chooses_with_that_frequency() -> None:
    counts = {"a": (4, 6), "b": (3, 7), "c": (1, 2)}
    truth = {name: best_share(counts, name) for name in counts}

    chosen = [thompson("exp", counts, f"cart-{n}".encode()) for n in range(3000)]

    for a in chosen[:200]:
        assert 0 < a.probability <= 1
        assert a.probability == pytest.approx(truth[a.variant], abs=0.05)  # 2,000 draws: SE ≤ 0.012
    frequency = Counter(a.variant for a in chosen)
    for name, p in truth.items():
        assert frequency[name] / 3000 == pytest.approx(p, abs=0.04)  # SE ≤ 0.01
    assert thompson("exp", counts, b"same").variant == thompson("exp", counts, b"same").variant


def run_round(engine: Engine, shop: Shop, start: datetime, size: int, winner: str) -> list[Cart]:
    """`size` carts abandoned at `start`; the winner's carts are ordered a day later, the rest expire."""
    shoppers = {abandon(engine, shop, anon, at=start): anon for anon in (random_id("anon") for _ in range(size))}
    engine.advance_clock(start + 2 * HOUR)
    assigned = [cart_of(engine, shop, c) for c in shoppers]
    engine.append(
        [
            order_completed(store_id=shop.store_id, cart_id=c.cart_id, anonymous_id=shoppers[c.cart_id], at=start + DAY)
            for c in assigned
            if c.variant == winner
        ]
    )
    engine.advance_clock(start + 8 * DAY + HOUR)  # past the 7-day recovery window: the others expire
    return assigned


def test_thompson_sends_more_traffic_to_the_variant_that_recovers_as_finished_carts_accumulate(
    tmp_path: Path, email: Recorder
) -> None:
    engine = build(tmp_path, email, experiments=experiments(BANDIT))
    shop = add_shop(engine)

    shares, everyone = [], []
    for number in range(3):
        assigned = run_round(engine, shop, START + number * 9 * DAY, 30, winner="b")
        everyone += assigned
        shares.append(sum(c.variant == "b" for c in assigned) / len(assigned))
        with engine.database.read() as uow:
            finished = uow.carts.finished_by_variant(shop.store_id, "bandit")
        assert sum(w + lost for w, lost in finished.values()) == 30 * (number + 1)
        assert finished.get("a", (0, 0))[0] == 0  # only b's carts are ordered

    assert 0.2 <= shares[0] <= 0.8  # no data yet: a coin toss
    assert shares[2] >= 0.9 and shares[2] > shares[0]
    statuses = Counter(cart_of(engine, shop, c.cart_id).status.value for c in assigned)
    assert statuses["recovered"] == sum(c.variant == "b" for c in assigned)
    with engine.database.read() as uow:
        found = measure.recovery(
            uow, shop.store_id, "USD", START, START + 30 * DAY, windows=DEFAULT_ATTRIBUTION_WINDOWS, channel_cost={}
        )
    per_variant = {v.variant: (v.carts, v.recovered, v.revenue) for v in found.variants}
    b_carts = sum(c.variant == "b" for c in everyone)
    assert per_variant == {"a": (90 - b_carts, 0, 0), "b": (b_carts, b_carts, b_carts * 1999)}
    assert found.variants[1].probability_best > 0.99
    engine.close()


def test_a_bandit_decision_logs_its_propensity_and_its_evidence(tmp_path: Path, email: Recorder) -> None:
    engine = build(tmp_path, email, experiments=experiments(BANDIT))
    shop = add_shop(engine)
    first = run_round(engine, shop, START, 12, winner="b")
    with engine.database.read() as uow:
        finished = uow.carts.finished_by_variant(shop.store_id, "bandit")
    counts = {name: finished.get(name, (0, 0)) for name in ("a", "b")}
    later = START + 9 * DAY
    carts = [abandon(engine, shop, random_id("anon"), at=later) for _ in range(10)]
    engine.advance_clock(later + 2 * HOUR)

    assert {c.variant for c in first} <= {"a", "b"}
    for cart_id in carts:
        cart, made = cart_of(engine, shop, cart_id), decision(engine, shop, cart_id)
        assert cart.variant is not None and cart.assignment_probability == made["propensity"]
        assert 0 < made["propensity"] <= 1
        assert made["propensity"] == pytest.approx(best_share(counts, cart.variant, 100_000), abs=0.05)
        assert made["policy"] == f"rules-v1+experiment:bandit/{cart.variant}"
        assert made["reasons"][0].startswith("experiment bandit: Thompson sampling")
        assert made["steps"][0]["step"] == f"{cart.variant}-reminder"
    engine.close()


def test_a_variant_without_steps_runs_the_store_s_own_journey(tmp_path: Path, email: Recorder) -> None:
    table = {"name": "control-test", "variants": [{"name": "control"}, {"name": "x", "steps": one_step("x", "2h")}]}
    engine = build(tmp_path, email, experiments=experiments(table))
    shop = add_shop(engine)
    carts = [abandon(engine, shop, f"anon-{n}") for n in range(30)]
    engine.advance_clock(START + HOUR)

    plans = {
        c: (cart_of(engine, shop, c).variant, [s["step"] for s in decision(engine, shop, c)["steps"]]) for c in carts
    }
    assert {tuple(steps) for variant, steps in plans.values() if variant == "control"} == {
        ("reminder", "second-reminder", "last-chance")  # the default journey
    }
    assert {tuple(steps) for variant, steps in plans.values() if variant == "x"} == {("x",)}
    assert {p.assignment_probability for p in (cart_of(engine, shop, c) for c in carts)} == {0.5}
    engine.close()


def test_finished_carts_are_counted_per_variant_of_one_experiment_in_one_store(tmp_path: Path, email: Recorder) -> None:
    engine = build(tmp_path, email)
    shop, other = add_shop(engine), add_shop(engine)
    with engine.database.write() as uow:
        for n, (store, experiment, variant, status) in enumerate(
            [
                (shop, "e", "a", "recovered"),
                (shop, "e", "a", "expired"),
                (shop, "e", "a", "expired"),
                (shop, "e", "b", "recovered"),
                (shop, "e", "b", "recovering"),  # not finished
                (shop, "f", "a", "recovered"),  # another experiment
                (other, "e", "a", "recovered"),  # another store
            ]
        ):
            cart = Cart(store.store_id, f"c{n}", f"s{n}", START, START, experiment=experiment, variant=variant)
            cart.status = CartStatus(status)
            uow.carts.save(cart)
    with engine.database.read() as uow:
        assert uow.carts.finished_by_variant(shop.store_id, "e") == {"a": (1, 2), "b": (1, 0)}
        assert uow.carts.finished_by_variant(other.store_id, "e") == {"a": (1, 0)}
        assert uow.carts.finished_by_variant(shop.store_id, "nothing") == {}
    engine.close()
