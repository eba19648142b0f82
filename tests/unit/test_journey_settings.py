"""Journeys, guardrails and channels as configured in cartrecover.toml, per store where a store says so."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from cartrecover.bootstrap import build_engine
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel, StepStatus
from cartrecover.errors import ConfigError
from cartrecover.settings import load_settings
from tests.conftest import START
from tests.factories import identified, item, product_added, random_id

NO_EXPLORING = DecisionConfig(exploration=0.0)  # no random plans: the configured journey runs

CONFIG = """
[engine]
data_dir = "{data}"
clock = "manual"
holdout_share = 0

[channels]
email = "null"
sms = "null"

[guardrails]
quiet_hours = {{ sms = ["08:00", "21:00"] }}
caps = [[3, "24h"]]
max_discount_percent = 20

[[journey.steps]]
name = "nudge"
delay = "30m"
channels = ["email"]
template = "reminder"

[[journey.steps]]
name = "offer"
delay = "2h"
channels = ["sms", "email"]
template = "incentive"
incentive = {{ percent = 25, min_cart_value = "50.00", valid_for = "24h" }}

[[stores]]
name = "plain"

[[stores]]
name = "bespoke"
currency = "JPY"

[[stores.journey.steps]]
name = "only"
delay = "3h"
channels = ["email"]
template = "incentive"
incentive = {{ percent = 5, min_cart_value = "5000" }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cartrecover.toml"
    path.write_text(text.format(data=tmp_path / "data"))
    return path


def test_the_default_journey_guardrails_and_channels_come_from_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CONFIG), env={})

    journey = settings.journey_for("plain").for_currency("USD")
    assert [(s.name, s.delay, s.channels) for s in journey.steps] == [
        ("nudge", timedelta(minutes=30), (Channel.EMAIL,)),
        ("offer", timedelta(hours=2), (Channel.SMS, Channel.EMAIL)),
    ]
    offer = journey.steps[1].incentive
    assert offer is not None and (offer.percent, offer.min_cart_value, offer.valid_for) == (
        25,
        5000,
        timedelta(hours=24),
    )
    assert settings.guardrails.quiet_hours == {Channel.SMS: (time(8), time(21))}
    assert settings.guardrails.caps == ((3, timedelta(hours=24)),)
    assert settings.channels["email"] == "null"


def test_a_store_with_its_own_journey_runs_it_and_the_others_run_the_default(tmp_path: Path) -> None:
    engine = build_engine(load_settings(write(tmp_path, CONFIG), env={}, decisions=NO_EXPLORING), start=START)
    stores = {s.name: s for s in engine.stores.all()}
    for name in ("plain", "bespoke"):
        anon = random_id("anon")
        engine.append(
            [
                identified(
                    store_id=stores[name].store_id,
                    anonymous_id=anon,
                    email=f"{anon}@example.com",
                    consent={"email": True},
                ),
                product_added(
                    item("p1", price=9000), store_id=stores[name].store_id, anonymous_id=anon, cart_id=f"c-{name}"
                ),
            ]
        )

    engine.advance_clock(START + timedelta(hours=5))

    with engine.database.read() as uow:
        plain = uow.outbox.for_cart(stores["plain"].store_id, "c-plain")
        bespoke = uow.outbox.for_cart(stores["bespoke"].store_id, "c-bespoke")
    assert [(s.name, s.status) for s in plain] == [("nudge", StepStatus.SENT), ("offer", StepStatus.SENT)]
    assert plain[1].incentive is not None and plain[1].incentive.percent == 20  # capped by max_discount_percent
    assert [(s.name, s.status) for s in bespoke] == [("only", StepStatus.SENT)]
    assert bespoke[0].incentive is not None and bespoke[0].incentive.min_cart_value == 5000  # yen have no minor unit
    engine.close()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[channels]\nfax = "console"', "unknown channels: fax"),
        ('[[journey.steps]]\nname = "x"\ndelay = "1h"\nchannels = ["pigeon"]', "journey step x"),
        ('[guardrails]\nquiet_hours = { sms = ["late"] }', "guardrails.quiet_hours"),
        ('[[journey.steps]]\nname = "x"\ndelay = "soon"', "not a duration"),
    ],
)
def test_a_wrong_setting_is_refused_saying_which(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "cartrecover.toml"
    path.write_text(section)

    with pytest.raises(ConfigError) as refused:
        load_settings(path, env={})

    assert message in refused.value.message
