"""Last-touch attribution: the last click within its channel's window, else the last message within it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cartrecover.errors import ConfigError
from cartrecover.journey_settings import DEFAULT_ATTRIBUTION_WINDOWS, parse_measure
from cartrecover.measure import Touch, last_touch
from cartrecover.settings import load_settings, parse_duration
from tests.conftest import START

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
WINDOWS = DEFAULT_ATTRIBUTION_WINDOWS


def touch(at: timedelta, channel: str = "email", *, clicked: bool = False, step: str = "reminder") -> Touch:
    return Touch(START + at, channel, step, f"{step}-{channel}-{at}-{clicked}", clicked, "none")


def test_the_defaults_are_klaviyo_s_five_days_for_email_and_a_day_for_push_sms_and_onsite() -> None:
    assert WINDOWS == {"email": 5 * DAY, "push": DAY, "sms": DAY, "onsite": DAY}


def test_a_click_in_its_window_beats_a_later_message() -> None:
    click = touch(HOUR, "email", clicked=True)
    later_sms = touch(2 * HOUR, "sms")

    assert last_touch(START + 2 * DAY, [later_sms, click], WINDOWS) == click


def test_the_last_of_two_clicks_in_their_windows_is_credited() -> None:
    first, second = touch(HOUR, "email", clicked=True), touch(3 * HOUR, "sms", clicked=True, step="last-chance")

    assert last_touch(START + 5 * HOUR, [second, first], WINDOWS) == second


def test_an_email_click_counts_for_five_days_and_not_a_second_more() -> None:
    click = touch(timedelta(0), "email", clicked=True)

    assert last_touch(START + 5 * DAY, [click], WINDOWS) == click
    assert last_touch(START + 5 * DAY + timedelta(seconds=1), [click], WINDOWS) is None


def test_an_sms_click_counts_for_a_day_then_the_last_message_still_in_its_window_is_credited() -> None:
    sms_click = touch(timedelta(0), "sms", clicked=True, step="last-chance")
    email_sent = touch(-2 * DAY, "email")

    assert last_touch(START + 25 * HOUR, [sms_click, email_sent], WINDOWS) == email_sent


def test_without_a_click_the_last_message_in_its_window_is_credited() -> None:
    early, late = touch(timedelta(0), "email"), touch(DAY, "email", step="second-reminder")

    assert last_touch(START + 2 * DAY, [early, late], WINDOWS) == late


def test_a_touch_after_the_order_or_on_a_channel_without_a_window_is_never_credited() -> None:
    after = touch(2 * HOUR, "email", clicked=True)
    unknown = touch(timedelta(0), "carrier-pigeon", clicked=True)

    assert last_touch(START + HOUR, [after, unknown], WINDOWS) is None


def test_windows_are_configurable_per_channel() -> None:
    click = touch(timedelta(0), "email", clicked=True)

    assert last_touch(START + 2 * DAY, [click], {**WINDOWS, "email": DAY}) is None


def test_the_measure_section_sets_windows_and_channel_costs_and_keeps_other_defaults() -> None:
    config = parse_measure(
        {"attribution_windows": {"email": "3d"}, "channel_cost": {"email": "0.001", "sms": 0.0079}}, parse_duration
    )

    assert config.attribution_windows == {**WINDOWS, "email": 3 * DAY}
    assert config.channel_cost == {"email": Decimal("0.001"), "sms": Decimal("0.0079")}


def test_settings_read_the_measure_section_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "cartrecover.toml"
    path.write_text('[measure]\nattribution_windows = { push = "12h" }\nchannel_cost = { sms = "0.0079" }\n')

    settings = load_settings(path, env={})

    assert settings.measure.attribution_windows["push"] == 12 * HOUR
    assert settings.measure.channel_cost == {"sms": Decimal("0.0079")}
    assert load_settings(None, env={}).measure.attribution_windows == WINDOWS


@pytest.mark.parametrize(
    "raw",
    [
        {"channel_cost": {"fax": "1"}},
        {"attribution_windows": {"fax": "1d"}},
        {"channel_cost": {"sms": "-0.01"}},
        {"channel_cost": {"sms": "abc"}},
        {"windows": {}},
    ],
)
def test_a_measure_section_that_makes_no_sense_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_measure(raw, parse_duration)
