"""Money in exact minor units, timestamps as clients really send them, and Segment's clock-skew rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from cartrecover.domain.money import InvalidAmount, exponent, to_major, to_minor
from cartrecover.errors import InvalidEvent
from cartrecover.ingest.timestamps import clamp_future, event_time, parse_timestamp
from tests.conftest import SAMPLES

# --- money -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        (" 19.99 ", "EUR", 1999),
        ("0.1", "USD", 10),
        (Decimal("19.99"), "USD", 1999),
        (Decimal("0.30000000000000004"), "USD", 30),
        (20, "USD", 2000),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("1.234", "kwd", 1234),
        ("-5.00", "USD", -500),
        ("1e2", "USD", 10000),
    ],
)
def test_amounts_become_exact_minor_units_of_their_currency(
    amount: str | Decimal | int, currency: str, minor: int
) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("0.125", "USD", 12),  # half to even: down
        ("0.135", "USD", 14),  # half to even: up
        ("0.005", "USD", 0),
        ("0.015", "USD", 2),
        ("1500.5", "JPY", 1500),
        ("1501.5", "JPY", 1502),
        ("1.2345", "KWD", 1234),
        ("1.2355", "KWD", 1236),
    ],
)
def test_amounts_with_more_digits_than_the_minor_unit_round_half_to_even(
    amount: str, currency: str, minor: int
) -> None:
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize("amount", ["", "abc", "19,99", "1.2.3", "NaN", "Infinity", "-inf", Decimal("NaN")])
def test_an_amount_that_is_not_a_finite_decimal_is_refused(amount: str | Decimal) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(amount, "USD")


def test_exponents_follow_iso_4217_and_default_to_two() -> None:
    assert (exponent("JPY"), exponent("KRW"), exponent("KWD"), exponent("BHD"), exponent("USD"), exponent("XYZ")) == (
        0,
        0,
        3,
        3,
        2,
        2,
    )


def test_minor_units_convert_back_to_the_same_major_amount() -> None:
    assert to_major(1999, "USD") == Decimal("19.99")
    assert to_major(1500, "JPY") == Decimal("1500")
    assert to_major(1234, "KWD") == Decimal("1.234")
    assert to_minor(to_major(123456789, "EUR"), "EUR") == 123456789


# --- parse_timestamp -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T10:00:00Z", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T10:00:00.123Z", datetime(2026, 1, 5, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2026-01-05T10:00:00.123456789Z", datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-05T10:00:00+00:00", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T12:00:00+02:00", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T05:30:00-04:30", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T12:00:00+0200", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05 10:00:00", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05T10:00", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
        ("2015-2-02T00:30:08.276Z", datetime(2015, 2, 2, 0, 30, 8, 276000, tzinfo=UTC)),
        ("2015-2-2T0:30:08Z", datetime(2015, 2, 2, 0, 30, 8, tzinfo=UTC)),
        ("2015-2-02T01:30:08+01:00", datetime(2015, 2, 2, 0, 30, 8, tzinfo=UTC)),
        ("2015-2-02 00:30:08,5", datetime(2015, 2, 2, 0, 30, 8, 500000, tzinfo=UTC)),
    ],
)
def test_iso_timestamps_in_the_forms_clients_send_are_read_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text, "timestamp")

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_a_naive_timestamp_is_taken_as_utc() -> None:
    assert parse_timestamp("2026-01-05T10:00:00", "timestamp").tzinfo is not None
    assert parse_timestamp("2026-01-05T10:00:00", "timestamp") == datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_segments_own_malformed_sample_timestamp_is_accepted() -> None:
    sample = json.loads((SAMPLES / "segment_http_api_batch_example.json").read_text())
    texts = [message["timestamp"] for message in sample["batch"]]

    parsed = [parse_timestamp(text, "timestamp") for text in texts]

    assert "2015-2-02T00:30:08.276Z" in texts
    assert datetime(2015, 2, 2, 0, 30, 8, 276000, tzinfo=UTC) in parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30",
        "2026-01-05T25:00:00Z",
        "12:00",
        "2026/01/05",
        "1700000000",
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
        "9999-12-31T23:30:00-01:00",  # after year 9999 once in UTC
    ],
)
def test_a_string_that_is_not_a_timestamp_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_timestamp(text, "batch[3].sentAt")

    assert "batch[3].sentAt" in raised.value.message
    assert raised.value.status == 400


# --- event_time: Segment's skew rule ---------------------------------------------------------------------------

RECEIVED = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_the_event_time_corrects_the_device_clock_by_the_time_between_sending_and_receipt() -> None:
    # The device clock runs an hour fast: it says it sent at 11:00:05 what happened at 11:00:00.
    original = RECEIVED + timedelta(hours=1)
    sent = original + timedelta(seconds=5)

    assert event_time(original, sent, RECEIVED) == RECEIVED - timedelta(seconds=5)


def test_the_event_time_of_a_message_without_sent_at_is_its_own_timestamp() -> None:
    original = RECEIVED - timedelta(minutes=3)

    assert event_time(original, None, RECEIVED) == original


def test_a_message_without_a_timestamp_happened_when_it_was_received() -> None:
    assert event_time(None, RECEIVED - timedelta(minutes=1), RECEIVED) == RECEIVED


def test_an_event_time_is_never_later_than_its_receipt() -> None:
    future = RECEIVED + timedelta(days=1)

    assert event_time(future, None, RECEIVED) == RECEIVED
    # sentAt before originalTimestamp (a broken client) would put the event after receipt
    assert event_time(RECEIVED, RECEIVED - timedelta(minutes=5), RECEIVED) == RECEIVED


def test_event_time_works_across_offsets() -> None:
    plus_two = timezone(timedelta(hours=2))
    original = datetime(2026, 1, 5, 11, 59, tzinfo=plus_two)  # 09:59Z
    sent = datetime(2026, 1, 5, 12, 0, tzinfo=plus_two)  # 10:00Z

    assert event_time(original, sent, RECEIVED) == RECEIVED - timedelta(minutes=1)


def test_clamp_future_takes_a_future_time_as_the_time_of_receipt_beyond_the_slack() -> None:
    slack = timedelta(minutes=5)

    assert clamp_future(RECEIVED + timedelta(minutes=6), RECEIVED, slack) == RECEIVED
    assert clamp_future(RECEIVED + timedelta(minutes=4), RECEIVED, slack) == RECEIVED + timedelta(minutes=4)
    assert clamp_future(RECEIVED - timedelta(days=1), RECEIVED) == RECEIVED - timedelta(days=1)
