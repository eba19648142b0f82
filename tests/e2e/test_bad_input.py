"""Bad input gets the right 4xx with `{"code", "message"}` and changes nothing (DESIGN §6.4).

"Nothing" is checked on the stored state: read through the port, the event log holds no event after the offset
of its newest one before the request (offsets only grow, so this is "as many events after as before", without
reading the whole log each time: the property tests ask hundreds of times). Most tests share one server per
module (stores "a" and "b"); each compares its own before and after. Every test runs on both stacks: the
embedded one and the scale-out one, where the log is a NATS stream (which takes the largest batch in several
appends) and the stores are in PostgreSQL.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Keys, Server, ServerFactory, on_both_stacks

pytestmark = on_both_stacks

INGEST = ("/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch")


def track(**overrides: Any) -> dict[str, Any]:
    """A valid `Product Added` with a fresh messageId; overrides replace top-level fields."""
    message = {
        "type": "track",
        "messageId": f"m-{uuid.uuid4().hex}",
        "userId": "u-bad-input",
        "event": "Product Added",
        "properties": {"cart_id": "c-bad-input", "product_id": "sku-1", "price": 9.5, "quantity": 1},
    }
    message.update(overrides)
    return message


def props(**overrides: Any) -> dict[str, Any]:
    """Valid `Product Added` properties with some replaced."""
    return {"cart_id": "c-bad-input", "product_id": "sku-1", "price": 9.5, "quantity": 1, **overrides}


def refused(server: Server, send: Callable[[], httpx.Response], status: int, code: str) -> dict[str, Any]:
    """Send; the answer is `status` with `{"code": code, "message": …}`, and the event log did not grow."""
    mark = server.log_offset()
    response = send()
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert server.logged_after(mark) == []
    return body


def gzipped(payload: Any) -> bytes:
    """A JSON value, gzipped."""
    return gzip.compress(json.dumps(payload).encode())


JSON = {"Content-Type": "application/json"}


# -- Cases: (path, body or raw bytes, extra headers, expected status, expected code) ---------------------------

Case = tuple[str, Any, dict[str, str], int, str]

MALFORMED: dict[str, Case] = {
    "invalid JSON, single": ("/v1/track", b'{"userId": "u", "event": ', {}, 400, "invalid_json"),
    "invalid JSON, batch": ("/v1/batch", b'{"batch": [{"type": "track",', {}, 400, "invalid_json"),
    "not an object": ("/v1/track", b"[1, 2, 3]", {}, 400, "invalid_event"),
    "empty body": ("/v1/identify", b"", {}, 400, "invalid_json"),
    "batch is not a list": ("/v1/batch", {"batch": {"type": "track"}}, {}, 400, "invalid_event"),
    "batch is missing": ("/v1/batch", {"events": [track()]}, {}, 400, "invalid_event"),
    "properties is a list": ("/v1/track", track(properties=[1, 2]), {}, 400, "invalid_event"),
    "userId is an object": ("/v1/track", track(userId={"id": 1}), {}, 400, "invalid_event"),
    "event is a number": ("/v1/track", track(event=7), {}, 400, "invalid_event"),
    "price is not a number": ("/v1/track", track(properties=props(price="cheap")), {}, 400, "invalid_event"),
    "negative quantity": ("/v1/track", track(properties=props(quantity=-2)), {}, 400, "invalid_event"),
    "fractional quantity": ("/v1/track", track(properties=props(quantity=1.5)), {}, 400, "invalid_event"),
    "products is not a list": ("/v1/track", track(properties=props(products="x")), {}, 400, "invalid_event"),
    "product without id": (
        "/v1/track",
        track(properties={"cart_id": "c", "products": [{"price": 1}]}),
        {},
        400,
        "invalid_event",
    ),
    "timestamp is not a date": ("/v1/track", track(timestamp="yesterday-ish"), {}, 400, "invalid_timestamp"),
    "no userId nor anonymousId": ("/v1/track", track(userId=None), {}, 400, "no_user_anon_id"),
    "track without event": ("/v1/track", track(event=None), {}, 400, "invalid_event"),
    "type does not match the path": ("/v1/track", track(type="identify"), {}, 400, "invalid_event"),
    "messageId over 100 chars": ("/v1/track", track(messageId="m" * 101), {}, 400, "invalid_event"),
    "alias without previousId": ("/v1/alias", {"userId": "u-1"}, {}, 400, "invalid_event"),
    "unknown type in a batch": ("/v1/batch", {"batch": [track(), track(type="purchase")]}, {}, 400, "invalid_event"),
    "one bad event spoils the batch": (
        "/v1/batch",
        {"batch": [track(), track(), track(properties=props(price=[]))]},
        {},
        400,
        "invalid_event",
    ),
    "batch item without type": ("/v1/batch", {"batch": [track(), track(type=None)]}, {}, 400, "invalid_event"),
    # Numbers and times that parse but cannot be stored (each was a 500 once).
    "price over 64 bits": ("/v1/track", track(properties=props(price=10**30)), {}, 400, "invalid_event"),
    "price 1e400": (
        "/v1/track",
        b'{"userId": "u", "event": "Product Added", "properties": {"cart_id": "c", "product_id": "p", "price": 1e400}}',
        {},
        400,
        "invalid_event",
    ),
    "price 1e999999 as text": ("/v1/track", track(properties=props(price="1e999999")), {}, 400, "invalid_event"),
    "quantity 1e30": ("/v1/track", track(properties=props(quantity=10**30)), {}, 400, "invalid_event"),
    "huge integer anywhere in properties": (
        "/v1/batch",
        {"batch": [track(), {"type": "page", "anonymousId": "a", "properties": {"n": [2**64]}}]},
        {},
        400,
        "invalid_event",
    ),
    "huge integer in the batch context": (
        "/v1/batch",
        {"batch": [{"type": "identify", "userId": "u"}], "context": {"traits": {"n": -(2**64)}}},
        {},
        400,
        "invalid_event",
    ),
    "timestamp and sentAt 9,998 years apart": (
        "/v1/track",
        track(timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z"),
        {},
        400,
        "invalid_timestamp",
    ),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_refused_with_400_and_stores_nothing(module_server: Server, case: Case) -> None:
    path, body, headers, status, code = case
    shop = module_server.stores["a"]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    refused(
        module_server,
        lambda: module_server.post(path, content=content, headers={**JSON, **shop.basic, **headers}),
        status,
        code,
    )


def big_event(size: int) -> dict[str, Any]:
    """A valid track call of at least `size` bytes."""
    return track(properties=props(note="x" * size))


SIZES: dict[str, tuple[str, Callable[[], Any], int, str]] = {
    "event over 32 KB": ("/v1/track", lambda: big_event(33 * 1024), 413, "payload_too_large"),
    "identify over 32 KB": (
        "/v1/identify",
        lambda: {"userId": "u", "traits": {"bio": "x" * 33_000}},
        413,
        "payload_too_large",
    ),
    "event over 32 KB in a batch": (
        "/v1/batch",
        lambda: {"batch": [track(), big_event(33 * 1024)]},
        413,
        "payload_too_large",
    ),
    "batch over 500 KB": (
        "/v1/batch",
        lambda: {"batch": [big_event(20_000) for _ in range(26)]},
        413,
        "payload_too_large",
    ),
    "batch over the server's 2 MB body limit": (
        "/v1/batch",
        lambda: {"batch": [big_event(30_000) for _ in range(80)]},
        413,
        "payload_too_large",
    ),
    "batch of 2,501 events": (
        "/v1/batch",
        lambda: {"batch": [track() for _ in range(2_501)]},
        413,
        "payload_too_large",
    ),
}


@pytest.mark.parametrize("case", SIZES.values(), ids=SIZES.keys())
def test_oversize_input_is_refused_with_413_and_stores_nothing(module_server: Server, case: Any) -> None:
    path, make, status, code = case
    shop = module_server.stores["a"]
    content = json.dumps(make()).encode()
    refused(
        module_server, lambda: module_server.post(path, content=content, headers={**JSON, **shop.basic}), status, code
    )


def test_a_batch_of_exactly_2500_events_under_500_kb_is_accepted(module_server: Server) -> None:
    shop = module_server.stores["a"]
    batch = [{"type": "page", "messageId": f"p-{uuid.uuid4().hex}", "anonymousId": "a"} for _ in range(2_500)]
    mark = module_server.log_offset()
    response = module_server.post("/v1/batch", json={"batch": batch}, headers=shop.basic)
    assert response.status_code == 200, response.text
    logged = module_server.logged_after(mark)
    assert len(logged) == 2_500
    assert {event.message_id for event in logged} == {call["messageId"] for call in batch}


GZIP: dict[str, tuple[Callable[[], bytes], dict[str, str], int, str]] = {
    "not gzip at all": (lambda: json.dumps(track()).encode(), {"Content-Encoding": "gzip"}, 400, "invalid_gzip"),
    "gzip with a corrupt stream": (
        lambda: gzipped(track())[:12] + b"\xff" * 40,
        {"Content-Encoding": "gzip"},
        400,
        "invalid_gzip",
    ),
    "gzip cut before its checksum": (
        lambda: gzipped({"batch": [track()]})[:-8],
        {"Content-Encoding": "gzip"},
        400,
        "invalid_gzip",
    ),
    "gzip bomb over 500 KB inflated": (
        lambda: gzip.compress(b'{"batch": [' + b" " * 3_000_000 + b"]}"),
        {"Content-Encoding": "gzip"},
        413,
        "payload_too_large",
    ),
    "deflate is not supported": (
        lambda: zlib.compress(json.dumps({"batch": [track()]}).encode()),
        {"Content-Encoding": "deflate"},
        415,
        "unsupported_encoding",
    ),
}


@pytest.mark.parametrize("case", GZIP.values(), ids=GZIP.keys())
def test_bad_compression_is_refused_and_stores_nothing(module_server: Server, case: Any) -> None:
    make, headers, status, code = case
    shop = module_server.stores["a"]
    content = make()
    refused(
        module_server,
        lambda: module_server.post("/v1/batch", content=content, headers={**JSON, **shop.basic, **headers}),
        status,
        code,
    )


def test_a_gzipped_batch_is_accepted(module_server: Server) -> None:
    shop = module_server.stores["a"]
    mark = module_server.log_offset()
    content = gzipped({"batch": [track(), track()]})
    response = module_server.post(
        "/v1/batch", content=content, headers={**JSON, **shop.basic, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert len(module_server.logged_after(mark)) == 2


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/html", "multipart/form-data"])
def test_a_wrong_content_type_is_refused(module_server: Server, content_type: str) -> None:
    shop = module_server.stores["a"]
    content = json.dumps({"batch": [track()]}).encode()
    refused(
        module_server,
        lambda: module_server.post("/v1/batch", content=content, headers={"Content-Type": content_type, **shop.basic}),
        415,
        "unsupported_media_type",
    )


def basic(key: str) -> dict[str, str]:
    """Basic auth with `key` as the username."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


AUTH: dict[str, tuple[str, Callable[[Keys], dict[str, Any]]]] = {
    "unknown write key (Basic)": ("/v1/batch", lambda k: {"json": {"batch": [track()]}, "headers": basic("wk_nope")}),
    "unknown write key (body)": ("/v1/batch", lambda k: {"json": {"batch": [track()], "writeKey": "wk_nope"}}),
    "unknown write key (single call)": ("/v1/track", lambda k: {"json": track(writeKey="wk_nope")}),
    "no key at all": ("/v1/batch", lambda k: {"json": {"batch": [track()]}}),
    "no key on a single call": ("/v1/identify", lambda k: {"json": {"userId": "u-1"}}),
    "empty Basic username": ("/v1/track", lambda k: {"json": track(), "headers": basic("")}),
    "Basic that is not base64": ("/v1/track", lambda k: {"json": track(), "headers": {"Authorization": "Basic %%%"}}),
    "the admin key as write key": ("/v1/track", lambda k: {"json": track(), "headers": basic(k.admin_key)}),
    "a Bearer admin key on ingest": ("/v1/track", lambda k: {"json": track(), "headers": k.admin}),
    "a valid key in the body, a wrong one in Basic": (
        "/v1/batch",
        lambda k: {"json": {"batch": [track()], "writeKey": k.write_key}, "headers": basic("wk_nope")},
    ),
}


@pytest.mark.parametrize("case", AUTH.values(), ids=AUTH.keys())
def test_ingest_without_a_valid_write_key_gets_401_and_stores_nothing(module_server: Server, case: Any) -> None:
    path, make = case
    refused(module_server, lambda: module_server.post(path, **make(module_server.stores["a"])), 401, "unauthorized")


ADMIN: dict[str, tuple[str, str, Callable[[Keys], dict[str, Any]], int, str]] = {
    "no admin key": ("GET", "/api/v1/carts", lambda k: {}, 401, "unauthorized"),
    "unknown admin key": (
        "GET",
        "/api/v1/carts",
        lambda k: {"headers": {"Authorization": "Bearer ak_nope"}},
        401,
        "unauthorized",
    ),
    "write key as admin key": (
        "GET",
        "/api/v1/carts",
        lambda k: {"headers": {"Authorization": f"Bearer {k.write_key}"}},
        401,
        "unauthorized",
    ),
    "unknown status": (
        "GET",
        "/api/v1/carts",
        lambda k: {"headers": k.admin, "params": {"status": "lost"}},
        400,
        "invalid_query",
    ),
    "limit out of range": (
        "GET",
        "/api/v1/carts",
        lambda k: {"headers": k.admin, "params": {"limit": "0"}},
        400,
        "invalid_request",
    ),
    "clock without now": ("POST", "/api/v1/clock", lambda k: {"headers": k.admin, "json": {}}, 400, "invalid_request"),
    "clock with a bad time": (
        "POST",
        "/api/v1/clock",
        lambda k: {"headers": k.admin, "json": {"now": "soon"}},
        400,
        "invalid_timestamp",
    ),
    "clock moved back": (
        "POST",
        "/api/v1/clock",
        lambda k: {"headers": k.admin, "json": {"now": "2001-01-01T00:00:00Z"}},
        409,
        "clock",
    ),
}


@pytest.mark.parametrize("case", ADMIN.values(), ids=ADMIN.keys())
def test_bad_admin_requests_get_a_4xx(module_server: Server, case: Any) -> None:
    method, path, make, status, code = case
    clock_before = module_server.now()
    with module_server.client() as http:
        refused(module_server, lambda: http.request(method, path, **make(module_server.stores["a"])), status, code)
    assert module_server.now() == clock_before


def test_an_admin_key_of_store_a_gets_404_for_store_bs_cart_exactly_as_for_a_missing_one(module_server: Server) -> None:
    a, b = module_server.stores["a"], module_server.stores["b"]
    cart_id = f"only-b-{uuid.uuid4().hex[:6]}"
    response = module_server.post("/v1/track", json=track(properties=props(cart_id=cart_id)), headers=b.basic)
    assert response.status_code == 200
    module_server.advance()
    assert module_server.cart(b, cart_id)["id"] == cart_id

    theirs = refused(
        module_server, lambda: module_server.get(f"/api/v1/carts/{cart_id}", headers=a.admin), 404, "not_found"
    )
    missing_id = "x" * len(cart_id)
    missing = refused(
        module_server, lambda: module_server.get(f"/api/v1/carts/{missing_id}", headers=a.admin), 404, "not_found"
    )
    assert theirs["message"] == missing["message"].replace(missing_id, cart_id)  # nothing tells them apart


# -- Rate limit ---------------------------------------------------------------------------------------------------

RATE_LIMITED = "[engine]\nrate_limit = 5\nrate_burst = 5\n"


@pytest.mark.slow
def test_over_the_rate_limit_ingest_gets_429_with_retry_after_and_stores_nothing(server_factory: ServerFactory) -> None:
    server = server_factory(stores=("a", "b"), config=RATE_LIMITED)
    a, b = server.stores["a"], server.stores["b"]
    accepted: set[str] = set()
    refused_ids: list[str] = []
    with server.client() as http:
        for _ in range(200):  # 5 a second after a burst of 5: only a very slow machine sends 200 without a 429
            message = track()
            response = http.post("/v1/track", json=message, headers=a.basic)
            if response.status_code == 429:
                refused_ids.append(message["messageId"])
                limited = response
                break
            assert response.status_code == 200, response.text
            accepted.add(message["messageId"])
    assert refused_ids, "never rate limited"
    assert limited.json()["code"] == "rate_limited"
    assert set(limited.json()) == {"code", "message"}
    assert int(limited.headers["Retry-After"]) >= 1
    assert server.message_ids(a) == accepted  # the refused event is not in the log

    # The limit is per store: store b still gets in.
    response = server.post("/v1/track", json=track(), headers=b.basic)
    assert response.status_code == 200, response.text
    assert server.event_count(b) == 1


# -- Property: junk never gets a 5xx, and a 4xx never stores anything ---------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
edge_numbers = st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 1e300, -1e300, 1e-300])
edge_times = st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "2026-02-30T00:00:00Z", ""])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | edge_numbers
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | edge_times
    | json_values
)
names = st.sampled_from(["Product Added", "Product Removed", "Checkout Started", "Order Completed", "Cart Viewed"])
products = st.lists(
    st.fixed_dictionaries(
        {},
        optional={"product_id": scalars, "sku": scalars, "price": scalars, "quantity": scalars, "variant": scalars},
    ),
    max_size=3,
)
segment_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]) | scalars,
        "messageId": st.text(max_size=120) | scalars,
        "userId": st.text(max_size=10) | scalars,
        "anonymousId": st.text(max_size=10) | scalars,
        "previousId": scalars,
        "event": names | scalars,
        "name": scalars,
        "timestamp": st.datetimes().map(lambda d: d.isoformat()) | edge_times | scalars,
        "sentAt": st.datetimes().map(lambda d: d.isoformat()) | edge_times | scalars,
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "cart_id": scalars,
                "order_id": scalars,
                "price": scalars,
                "quantity": scalars,
                "total": scalars,
                "currency": st.sampled_from(["USD", "JPY", "KWD", "XXX", ""]) | scalars,
                "products": products | scalars,
                "product_id": scalars,
            },
        )
        | scalars,
        "traits": st.dictionaries(st.sampled_from(["email", "phone", "consent"]), scalars) | scalars,
        "context": st.dictionaries(st.sampled_from(["traits", "timezone", "page"]), scalars) | scalars,
    },
)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(encoded),
    segment_like.map(encoded),
    st.lists(segment_like, max_size=4).map(lambda b: encoded({"batch": b})),
    st.fixed_dictionaries({"batch": json_values}, optional={"sentAt": scalars, "context": scalars}).map(encoded),
)


def check_never_5xx(server: Server, path: str, content: bytes, headers: dict[str, str]) -> None:
    mark = server.log_offset()
    response = server.post(path, content=content, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message"}
        assert server.logged_after(mark) == []
    else:
        assert response.status_code == 200


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(INGEST), content=bodies, gzip_it=st.booleans())
def test_junk_on_ingest_never_gets_a_5xx_and_a_4xx_stores_nothing(
    module_server: Server, path: str, content: bytes, gzip_it: bool
) -> None:
    headers = {**JSON, **module_server.stores["b"].basic}
    if gzip_it:
        content, headers = gzip.compress(content), {**headers, "Content-Encoding": "gzip"}
    check_never_5xx(module_server, path, content, headers)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(INGEST),
    content=bodies,
    headers=st.dictionaries(
        st.sampled_from(["Authorization", "Content-Type", "Content-Encoding"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.strip),
    ),
)
def test_junk_headers_never_get_a_5xx(
    module_server: Server, path: str, content: bytes, headers: dict[str, str]
) -> None:
    check_never_5xx(module_server, path, content, headers)
