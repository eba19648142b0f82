"""Segment calls (HTTP Tracking API, e-commerce spec v2) normalised to `Event`, and refused with clear reasons."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartrecover.domain.events import CartChange, Event, EventKind, LineItem
from cartrecover.errors import InvalidEvent, PayloadTooLarge
from cartrecover.ingest import segment
from tests.conftest import SAMPLES
from tests.factories import random_id

RECEIVED = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def track(name: str, **properties: Any) -> dict[str, Any]:
    """A track call body from an anonymous shopper."""
    return {"type": "track", "event": name, "anonymousId": random_id("anon"), "properties": properties}


def normalise(body: dict[str, Any] | bytes, kind: str | None = None, *, currency: str = "USD") -> Event:
    """POST /v1/<kind> as ingest does it: decode from bytes (so floats arrive as JSON), then normalise."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = kind or (json.loads(raw).get("type") if isinstance(body, bytes) else body.get("type")) or "track"
    message = segment.read_single(raw, kind)
    return segment.normalise(message, kind, store_id=7, currency=currency, sent_at=None, received_at=RECEIVED)


def normalise_batch(body: dict[str, Any] | bytes) -> list[Event]:
    """POST /v1/batch as ingest does it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    messages, sent_at, _ = segment.read_batch(raw)
    return [
        segment.normalise(m, f"batch[{i}]", store_id=7, currency="USD", sent_at=sent_at, received_at=RECEIVED)
        for i, m in enumerate(messages)
    ]


def refusal(body: dict[str, Any] | bytes, kind: str | None = None) -> InvalidEvent:
    """The InvalidEvent a body is refused with."""
    with pytest.raises(InvalidEvent) as raised:
        normalise(body, kind)
    return raised.value


# --- what each e-commerce event means ----------------------------------------------------------------------


def test_product_added_adds_its_product_with_an_exact_price_and_the_cart_id() -> None:
    cart_id = random_id("cart")
    e = normalise(track("Product Added", cart_id=cart_id, product_id="p1", sku="SKU-1", price=19.99, quantity=2))

    assert (e.kind, e.change, e.cart_id, e.currency, e.source) == (
        EventKind.CART_ACTIVITY,
        CartChange.ADD,
        cart_id,
        "USD",
        "segment",
    )
    assert e.items == (LineItem(product_id="p1", quantity=2, price=1999, sku="SKU-1"),)
    assert e.store_id == 7 and not e.checkout_started


def test_every_field_of_a_cart_event_lands_in_the_field_of_its_name() -> None:
    # normalise builds Event positionally: each field gets a value no other field has.
    body = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-1",
        "anonymousId": "anon-1",
        "userId": "user-1",
        "timestamp": "2026-01-05T09:00:00Z",
        "context": {"timezone": "Asia/Tokyo", "traits": {"email": " A@B.Example ", "phone": "+1 555"}},
        "properties": {
            "cart_id": "cart-1",
            "checkout_id": "chk-1",
            "order_id": "ord-1",
            "currency": "EUR",
            "total": 12.5,
            "restore_url": "https://s.example/r",
            "products": [{"product_id": "p1", "sku": "S1", "variant": "M", "name": "Shirt", "price": 6.25,
                          "quantity": 2, "url": "https://s.example/p1", "image_url": "https://s.example/p1.jpg"}],
        },
    }  # fmt: skip

    e = normalise(body)

    assert e == Event(
        kind=EventKind.ORDER_PLACED,
        store_id=7,
        message_id="m-1",
        source="segment",
        name="Order Completed",
        at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        received_at=RECEIVED,
        anonymous_id="anon-1",
        user_id="user-1",
        email="a@b.example",
        phone="+1 555",
        cart_id="cart-1",
        refs=("checkout:chk-1", "order:ord-1"),
        order_id="ord-1",
        change=CartChange.REPLACE,
        items=(LineItem("p1", 2, 625, "S1", "M", "Shirt", "https://s.example/p1", "https://s.example/p1.jpg"),),
        currency="EUR",
        value=1250,
        checkout_started=True,
        restore_url="https://s.example/r",
        timezone="Asia/Tokyo",
        properties=e.properties,
    )
    assert e.items[0] == LineItem(
        product_id="p1",
        quantity=2,
        price=625,
        sku="S1",
        variant="M",
        name="Shirt",
        url="https://s.example/p1",
        image_url="https://s.example/p1.jpg",
    )
    assert e.properties["cart_id"] == "cart-1" and e.consent == {} and e.traits == {}


@pytest.mark.parametrize(
    ("body", "kind", "name"),
    [
        ({"type": "identify", "traits": {"email": "x@y.example", "consent": {"email": True}}}, EventKind.IDENTIFIED,
         "identify"),
        ({"type": "alias", "previousId": "old"}, EventKind.ALIASED, "alias"),
        ({"type": "page", "name": "Home", "properties": {"path": "/"}}, EventKind.BROWSED, "page: Home"),
        ({"type": "track", "event": "Song Played", "properties": {"path": "/"}}, EventKind.BROWSED, "Song Played"),
    ],
)  # fmt: skip
def test_every_field_of_other_events_lands_in_the_field_of_its_name(
    body: dict[str, Any], kind: EventKind, name: str
) -> None:
    body |= {"userId": "user-1", "messageId": "m-2", "context": {"timezone": "Asia/Tokyo"}}

    e = normalise(body)

    traits = body.get("traits", {})
    expected_properties = {"previous_id": "old"} if kind is EventKind.ALIASED else body.get("properties", {})
    assert e == Event(
        kind=kind,
        store_id=7,
        message_id="m-2",
        source="segment",
        name=name,
        at=RECEIVED,
        received_at=RECEIVED,
        user_id="user-1",
        email=traits.get("email"),
        timezone="Asia/Tokyo",
        consent={"email": True} if traits else {},
        traits=traits,
        properties=expected_properties,
    )


def test_prices_sent_as_json_floats_become_exact_minor_units() -> None:
    # 0.1 + 0.2 style values: as floats, 19.99 * 100 == 1998.9999999999998 and 4.35 * 100 == 434.99999999999994.
    for price, minor in ((19.99, 1999), (4.35, 435), (0.07, 7), (1.005, 100), (1234567.89, 123456789)):
        e = normalise(track("Product Added", product_id="p", price=price))
        assert e.items[0].price == minor, price


def test_a_price_in_a_currency_without_cents_or_with_three_decimals_uses_its_exponent() -> None:
    yen = normalise(track("Product Added", product_id="p", price=1500, currency="JPY"))
    dinar = normalise(track("Product Added", product_id="p", price=1.234, currency="KWD"))
    store_default = normalise(track("Product Added", product_id="p", price=1500), currency="JPY")

    assert (yen.items[0].price, yen.currency) == (1500, "JPY")
    assert (dinar.items[0].price, dinar.currency) == (1234, "KWD")
    assert (store_default.items[0].price, store_default.currency) == (1500, "JPY")


def test_product_removed_removes_its_product() -> None:
    e = normalise(track("Product Removed", product_id="p1", quantity=1))

    assert (e.kind, e.change) == (EventKind.CART_ACTIVITY, CartChange.REMOVE)
    assert [(i.product_id, i.quantity) for i in e.items] == [("p1", 1)]


def test_a_product_without_a_product_id_is_identified_by_its_sku() -> None:
    e = normalise(track("Product Added", sku="SKU-9"))

    assert e.items[0].product_id == "SKU-9"


def test_cart_viewed_with_products_replaces_the_whole_cart() -> None:
    e = normalise(
        track(
            "Cart Viewed",
            cart_id="c1",
            products=[{"product_id": "a", "price": 10.5, "quantity": 2}, {"product_id": "b", "price": 3}],
        )
    )

    assert (e.kind, e.change, e.cart_id) == (EventKind.CART_ACTIVITY, CartChange.REPLACE, "c1")
    assert [(i.product_id, i.quantity, i.price) for i in e.items] == [("a", 2, 1050), ("b", 1, 300)]


def test_a_snapshot_event_without_products_leaves_the_contents_alone() -> None:
    e = normalise(track("Cart Viewed", cart_id="c1"))

    assert (e.change, e.items) == (CartChange.NONE, ())


def test_checkout_started_is_a_snapshot_that_starts_the_checkout_with_its_join_keys_and_total() -> None:
    e = normalise(
        track(
            "Checkout Started",
            checkout_id="chk-1",
            order_id="ord-1",
            cart_id="c1",
            value=30.99,
            currency="EUR",
            products=[{"product_id": "a", "price": 30.99}],
            checkout_url="https://shop.example/checkout/chk-1",
        )
    )

    assert (e.kind, e.change, e.checkout_started) == (EventKind.CART_ACTIVITY, CartChange.REPLACE, True)
    assert (e.cart_id, e.order_id, e.refs) == ("c1", "ord-1", ("checkout:chk-1", "order:ord-1"))
    assert (e.value, e.currency, e.restore_url) == (3099, "EUR", "https://shop.example/checkout/chk-1")


@pytest.mark.parametrize("name", ["Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered"])
def test_checkout_steps_are_checkout_activity_without_content_changes(name: str) -> None:
    e = normalise(track(name, checkout_id="chk-1", step=2))

    assert (e.kind, e.change, e.checkout_started, e.refs) == (
        EventKind.CART_ACTIVITY,
        CartChange.NONE,
        True,
        ("checkout:chk-1",),
    )


@pytest.mark.parametrize("name", ["Coupon Entered", "Coupon Applied", "Coupon Denied", "Coupon Removed"])
def test_coupon_events_are_cart_activity_that_does_not_start_a_checkout(name: str) -> None:
    e = normalise(track(name, cart_id="c1", coupon_id="SAVE10"))

    assert (e.kind, e.change, e.checkout_started, e.cart_id) == (EventKind.CART_ACTIVITY, CartChange.NONE, False, "c1")


def test_event_names_are_matched_without_regard_to_case() -> None:
    assert normalise(track("product added", product_id="p")).change is CartChange.ADD
    assert normalise(track("PRODUCT ADDED", product_id="p")).kind is EventKind.CART_ACTIVITY


def test_order_completed_places_an_order_with_its_total_and_join_keys() -> None:
    e = normalise(
        track(
            "Order Completed",
            order_id="ord-1",
            checkout_id="chk-1",
            cart_id="c1",
            total=27.50,
            revenue=25.00,
            currency="USD",
            products=[{"product_id": "a", "price": 25.0}],
        )
    )

    assert (e.kind, e.order_id, e.cart_id) == (EventKind.ORDER_PLACED, "ord-1", "c1")
    assert e.refs == ("checkout:chk-1", "order:ord-1")
    assert e.value == 2750  # total first, then revenue, then value
    assert e.change is CartChange.REPLACE and e.items[0].price == 2500


def test_order_completed_falls_back_to_revenue_then_value() -> None:
    assert normalise(track("Order Completed", order_id="o", revenue=12.34)).value == 1234
    assert normalise(track("Order Completed", order_id="o", value=5)).value == 500
    assert normalise(track("Order Completed", order_id="o")).value is None


def test_the_e_commerce_v1_name_completed_order_is_an_order_too() -> None:
    assert normalise(track("Completed Order", order_id="o")).kind is EventKind.ORDER_PLACED


def test_order_cancelled_cancels_the_order() -> None:
    e = normalise(track("Order Cancelled", order_id="ord-1"))

    assert (e.kind, e.order_id) == (EventKind.ORDER_CANCELLED, "ord-1")


def test_any_other_track_call_is_browsing_that_keeps_its_properties() -> None:
    e = normalise(track("Products Searched", query="shoes"))

    assert (e.kind, e.name, e.properties) == (EventKind.BROWSED, "Products Searched", {"query": "shoes"})


@pytest.mark.parametrize("kind", ["page", "screen", "group"])
def test_page_screen_and_group_calls_are_browsing(kind: str) -> None:
    e = normalise({"userId": "u1", "name": "Home"}, kind)

    assert (e.kind, e.name, e.user_id) == (EventKind.BROWSED, f"{kind}: Home", "u1")


def test_identify_links_ids_and_keeps_contact_and_consent() -> None:
    e = normalise(
        {
            "type": "identify",
            "userId": 42,
            "anonymousId": "anon-1",
            "traits": {"email": " Jane@Example.COM ", "phone": "+15550100", "accepts_marketing": True},
            "context": {"timezone": "Europe/Berlin"},
        }
    )

    assert (e.kind, e.user_id, e.anonymous_id) == (EventKind.IDENTIFIED, "42", "anon-1")
    assert (e.email, e.phone, e.timezone) == ("jane@example.com", "+15550100", "Europe/Berlin")
    assert e.consent == {"email": True}
    assert e.identities == [("user", "42"), ("email", "jane@example.com"), ("anon", "anon-1")]


def test_consent_is_read_from_explicit_and_shopify_style_traits() -> None:
    traits = {
        "consent": {"email": False, "push": True, "junk": "yes"},
        "sms_marketing_consent": {"state": "subscribed"},
        "accepts_marketing": True,
    }

    assert segment.consent_of(traits) == {"email": False, "push": True, "sms": True}


def test_traits_in_the_context_of_a_track_call_give_its_contact() -> None:
    body = track("Checkout Started", checkout_id="chk") | {"context": {"traits": {"email": "a@b.example"}}}

    assert normalise(body).email == "a@b.example"


def test_alias_records_the_previous_id() -> None:
    e = normalise({"type": "alias", "userId": "u1", "previousId": "anon-1"})

    assert (e.kind, e.user_id, e.properties) == (EventKind.ALIASED, "u1", {"previous_id": "anon-1"})


def test_a_message_id_is_kept_and_a_missing_one_is_generated() -> None:
    message_id = random_id("m")
    kept = normalise(track("Product Added", product_id="p") | {"messageId": message_id})
    generated = [normalise(track("Product Added", product_id="p")).message_id for _ in range(2)]

    assert kept.message_id == message_id
    assert all(generated) and generated[0] != generated[1]


def test_the_event_time_follows_the_skew_rule_and_received_at_is_the_engine_clock() -> None:
    body = track("Product Added", product_id="p") | {
        "originalTimestamp": "2026-01-05T11:00:00Z",  # the device clock is an hour fast
        "sentAt": "2026-01-05T11:00:10Z",
    }

    e = normalise(body)

    assert e.at == RECEIVED - timedelta(seconds=10)
    assert e.received_at == RECEIVED


def test_a_batch_sent_at_applies_to_messages_without_their_own() -> None:
    body = {
        "sentAt": "2026-01-05T11:00:10Z",
        "batch": [track("Product Added", product_id="p") | {"timestamp": "2026-01-05T11:00:00Z"}],
    }

    assert normalise_batch(body)[0].at == RECEIVED - timedelta(seconds=10)


def test_the_batch_context_is_merged_into_each_message_which_wins_on_conflicts() -> None:
    body = {
        "context": {"timezone": "America/New_York", "traits": {"email": "batch@example.com"}},
        "batch": [
            track("Checkout Started", checkout_id="c1"),
            track("Checkout Started", checkout_id="c2") | {"context": {"timezone": "Asia/Tokyo"}},
        ],
    }

    first, second = normalise_batch(body)

    assert (first.timezone, first.email) == ("America/New_York", "batch@example.com")
    assert (second.timezone, second.email) == ("Asia/Tokyo", "batch@example.com")


def test_a_call_that_sends_a_context_field_as_null_does_not_take_the_batch_s() -> None:
    body = {
        "context": {"timezone": "America/New_York", "traits": {"email": "batch@example.com"}},
        "batch": [track("Checkout Started", checkout_id="c1") | {"context": {"timezone": None, "traits": None}}],
    }

    (event,) = normalise_batch(body)

    assert (event.timezone, event.email) == (None, None)


def test_only_the_timezone_and_traits_of_a_context_are_read_and_the_rest_may_be_anything() -> None:
    context = {"page": {"url": "https://x.example/p", "n": [1, 2.5, None]}, "library": "x", "timezone": "Asia/Tokyo"}
    body = track("Checkout Started", checkout_id="c1") | {"context": context | {"traits": {"phone": "+1 555"}}}

    e = normalise(body)

    assert (e.timezone, e.phone, e.email) == ("Asia/Tokyo", "+1 555", None)
    assert normalise(track("Checkout Started", checkout_id="c1")).timezone is None


@pytest.mark.parametrize("timezone", [0, 1.5, True, {"name": "x"}])
def test_a_timezone_that_is_not_text_is_taken_as_the_old_path_took_it(timezone: Any) -> None:
    e = normalise(track("Checkout Started", checkout_id="c1") | {"context": {"timezone": timezone}})

    assert e.timezone == segment._text(json.loads(json.dumps(timezone)))


# --- refusals ----------------------------------------------------------------------------------------------


def test_a_track_call_without_an_event_name_is_refused() -> None:
    error = refusal({"type": "track", "anonymousId": "a", "properties": {}})

    assert "event name" in error.message
    assert error.status == 400


def test_a_call_with_neither_user_id_nor_anonymous_id_is_refused() -> None:
    error = refusal({"type": "track", "event": "Product Added", "properties": {"product_id": "p"}})

    assert "userId" in error.message and "anonymousId" in error.message
    assert error.code == "no_user_anon_id"


def test_empty_ids_count_as_missing() -> None:
    assert refusal({"type": "page", "userId": "", "anonymousId": ""}, "page").code == "no_user_anon_id"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("userId", {"id": 1}),
        ("anonymousId", ["a"]),
        ("messageId", 12),
        ("event", 5),
        ("properties", ["x"]),
        ("traits", "vip"),
        ("context", 1),
        ("timestamp", 1700000000),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_the_field(field: str, value: Any) -> None:
    body = track("Product Added", product_id="p") | {field: value}

    assert field in refusal(body).message


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"product_id": "p", "price": "abc"}, "price"),
        ({"product_id": "p", "price": True}, "price"),
        ({"product_id": "p", "price": {"amount": 1}}, "price"),
        ({"product_id": "p", "quantity": "two"}, "quantity"),
        ({"product_id": "p", "quantity": 1.5}, "quantity"),
        ({"product_id": "p", "quantity": -1}, "quantity"),
        ({"price": 1}, "product_id"),
        ({"products": {"product_id": "p"}}, "products"),
        ({"products": ["p"]}, "product"),
        ({"product_id": "p", "total": "lots"}, "total"),
        ({"product_id": "p", "price": -5}, "price"),
        ({"product_id": "p", "total": "-0.01"}, "total"),
    ],
)
def test_a_product_or_amount_that_makes_no_sense_is_refused_naming_the_field(
    properties: dict[str, Any], field: str
) -> None:
    name = "Cart Viewed" if "products" in properties or "total" in properties else "Product Added"

    assert field in refusal(track(name, **properties)).message


def test_a_bad_timestamp_is_refused_naming_the_field() -> None:
    error = refusal(track("Product Added", product_id="p") | {"sentAt": "yesterday"})

    assert "sentAt" in error.message


def test_a_message_id_over_100_characters_is_refused() -> None:
    assert normalise(track("Product Added", product_id="p") | {"messageId": "m" * 100}).message_id == "m" * 100
    assert "messageId" in refusal(track("Product Added", product_id="p") | {"messageId": "m" * 101}).message


def test_a_body_of_another_type_than_its_path_is_refused() -> None:
    assert "type" in refusal({"type": "page", "anonymousId": "a"}, "track").message


def test_an_unknown_type_in_a_batch_is_refused_naming_its_position() -> None:
    with pytest.raises(InvalidEvent) as raised:
        normalise_batch({"batch": [track("x"), {"type": "purchase", "anonymousId": "a"}]})

    assert "batch[1]" in raised.value.message


def test_malformed_json_is_refused() -> None:
    assert refusal(b'{"type": "track",', "track").code == "invalid_json"


def test_an_event_over_32_kb_is_refused_as_too_large() -> None:
    at_limit = track("Product Added", product_id="p", pad="")
    at_limit["properties"]["pad"] = "x" * (segment.MAX_EVENT_BYTES - len(json.dumps(at_limit).encode()))
    over = track("Product Added", product_id="p", pad="x" * segment.MAX_EVENT_BYTES)

    assert len(json.dumps(at_limit).encode()) == segment.MAX_EVENT_BYTES
    assert normalise(at_limit).kind is EventKind.CART_ACTIVITY
    with pytest.raises(PayloadTooLarge) as raised:
        normalise(over)
    assert raised.value.status == 413


def test_an_event_over_32_kb_inside_a_batch_is_refused_naming_it() -> None:
    body = {"batch": [track("x"), track("Product Added", product_id="p", pad="x" * segment.MAX_EVENT_BYTES)]}

    with pytest.raises(PayloadTooLarge) as raised:
        normalise_batch(body)

    assert "batch[1]" in raised.value.message


def test_a_batch_under_32_kb_whose_events_are_fine_is_accepted_and_one_over_32_kb_with_a_big_event_is_not() -> None:
    small = {"batch": [track("Product Added", product_id="p", pad="x" * 1_000)]}
    big_event = track("Product Added", product_id="p", pad="x" * segment.MAX_EVENT_BYTES)
    large = {"batch": [track("x"), track("y"), big_event]}

    assert len(json.dumps(small).encode()) < segment.MAX_EVENT_BYTES
    assert [e.kind for e in normalise_batch(small)] == [EventKind.CART_ACTIVITY]
    with pytest.raises(PayloadTooLarge) as raised:
        normalise_batch(large)
    assert "batch[2]" in raised.value.message


def test_a_huge_integer_in_one_call_s_context_refuses_the_batch_naming_that_call() -> None:
    body = {"batch": [track("x"), track("y") | {"context": {"page": {"n": 2**64}}}]}

    with pytest.raises(InvalidEvent) as raised:
        normalise_batch(body)

    assert "batch[1]" in raised.value.message and str(2**64) in raised.value.message


def test_long_digit_runs_that_are_not_huge_integers_are_accepted() -> None:
    body = {
        "context": {"traits": {"card": "4" * 30}},
        "batch": [
            track("x", reference="1" * 40, big=2**63 - 1, small=-(2**63)) | {"context": {"id": "9" * 25}},
            track("y", amount=1.5e300),
        ],
    }

    assert len(normalise_batch(body)) == 2
    assert normalise(track("x", reference="7" * 19)).properties["reference"] == "7" * 19


@given(st.binary(max_size=200) | st.text(alphabet="0123456789x-é", max_size=60).map(str.encode))
def test_the_long_number_prefilter_agrees_with_the_regex_it_replaced(body: bytes) -> None:
    assert segment.has_long_number(body) == bool(re.search(rb"\d{19}", body))


def test_a_batch_over_500_kb_is_refused_as_too_large() -> None:
    event = track("x", pad="x" * 20_000)
    body = {"batch": [event] * 26}

    assert len(json.dumps(body).encode()) > segment.MAX_BATCH_BYTES
    with pytest.raises(PayloadTooLarge):
        normalise_batch(body)


def test_a_batch_of_more_than_2500_events_is_refused_and_2500_are_accepted() -> None:
    small = {"type": "page", "anonymousId": "a"}

    assert len(normalise_batch({"batch": [small] * segment.MAX_BATCH_EVENTS})) == segment.MAX_BATCH_EVENTS
    with pytest.raises(PayloadTooLarge) as raised:
        normalise_batch({"batch": [small] * (segment.MAX_BATCH_EVENTS + 1)})
    assert "2501" in raised.value.message


# --- Segment's own samples ---------------------------------------------------------------------------------


def test_segments_batch_sample_parses_with_its_malformed_timestamp() -> None:
    events = normalise_batch((SAMPLES / "segment_http_api_batch_example.json").read_bytes())

    assert [(e.kind, e.user_id) for e in events] == [
        (EventKind.IDENTIFIED, "019mr8mf4r"),
        (EventKind.BROWSED, "019mr8mf4r"),
        (EventKind.IDENTIFIED, "971mj8mk7p"),
        (EventKind.BROWSED, "971mj8mk7p"),
    ]
    assert events[0].email == "jake@yahoo.com"
    assert events[2].at == datetime(2015, 2, 2, 0, 30, 8, 276000, tzinfo=UTC)
    assert events[1].name == "Song Played"


def test_segments_common_track_sample_parses() -> None:
    e = normalise((SAMPLES / "segment_spec_common_track_example.json").read_bytes(), "track")

    assert (e.kind, e.name, e.user_id, e.anonymous_id) == (
        EventKind.BROWSED,
        "Report Submitted",
        "97980cfea0067",
        "507f191e810c19729de860ea",
    )
    assert e.message_id == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert e.timezone == "Europe/Amsterdam"
    assert e.at <= e.received_at


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("segment_*.json")), ids=lambda p: p.name)
def test_every_segment_sample_file_parses(path: Any) -> None:
    raw = path.read_bytes()
    events = normalise_batch(raw) if "batch" in json.loads(raw) else [normalise(raw)]

    assert events and all(e.store_id == 7 for e in events)


# --- what an order used: coupons and discount (for incentive cost) -------------------------------------------


def test_order_completed_keeps_its_coupon_and_discount_in_minor_units() -> None:
    e = normalise(track("Order Completed", order_id="o", total=45.0, coupon="SAVE10-AB12", discount=5.00))

    assert (e.coupons, e.discount) == (("SAVE10-AB12",), 500)


def test_an_order_may_name_several_coupons_as_a_list_and_blanks_are_dropped() -> None:
    e = normalise(track("Order Completed", order_id="o", coupon=["A1", "", "B2", "A1"], discount="2.5"))

    assert (e.coupons, e.discount) == (("A1", "B2"), 250)


def test_an_order_without_coupon_or_discount_has_none() -> None:
    e = normalise(track("Order Completed", order_id="o", total=10))

    assert (e.coupons, e.discount) == ((), None)


def test_only_orders_carry_coupons_a_coupon_applied_event_does_not() -> None:
    e = normalise(track("Coupon Applied", coupon="SAVE10", discount=1))

    assert (e.coupons, e.discount) == ((), None)


@pytest.mark.parametrize("discount", ["-5", "abc", "1e400"])
def test_an_order_discount_that_makes_no_sense_is_refused_naming_it(discount: str) -> None:
    assert "discount" in refusal(track("Order Completed", order_id="o", discount=discount)).message


def test_coupons_and_discount_survive_the_event_log_encoding() -> None:
    from cartrecover.domain.events import decode_event, encode_event

    e = normalise(track("Order Completed", order_id="o", coupon="C", discount=1.25))

    back = decode_event(encode_event(e))
    assert (back.coupons, back.discount, back.value, back.order_id) == (("C",), 125, None, "o")
