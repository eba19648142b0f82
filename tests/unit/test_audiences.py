"""Ad audiences: the abandoners who may be retargeted, as SHA-256 of normalised email and E.164 phone."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient

from cartrecover.deliver import audiences
from cartrecover.domain.contact import address_key, hashed_email, hashed_phone, normalise_email, normalise_phone
from cartrecover.domain.journey import Guardrails
from cartrecover.engine import Engine
from cartrecover.entrypoints.cli import main
from tests.conftest import START, Shop, add_shop
from tests.factories import identified, item, order_completed, product_added, random_id

HOUR = timedelta(hours=1)
WINDOW = {"since": START.isoformat(), "until": (START + 2 * HOUR).isoformat()}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        (" Jane.Doe@Example.com ", "jane.doe@example.com"),
        ("Jane.Doe+shoes@Example.com", "jane.doe+shoes@example.com"),
        ("Jane.Doe+shoes@GMail.com", "jane.doe+shoes@gmail.com"),  # Customer Match: no Gmail dot or +tag removal
    ],
)
def test_emails_are_trimmed_and_lower_cased_and_nothing_else(raw: str, normal: str) -> None:
    assert normalise_email(raw) == normal
    assert hashed_email(raw) == sha(normal)


def test_the_hash_of_a_known_email_is_the_sha256_of_its_normal_form() -> None:
    expected = hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert hashed_email(" Jane.Doe@Example.com ") == expected
    # and as `printf %s jane.doe@example.com | sha256sum` prints it, so that no change of normal form goes unseen
    assert expected == "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
    assert hashed_phone("+1 650-253-1234") == "e101d1333c2310c83a1f96c4e0c12aa18b151ee0baaa2db3998ee3797d74b685"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("+1 (650) 253-1234", "+16502531234"),
        ("+49 151 1234 5678", "+4915112345678"),
        ("0049 151 1234 5678", "+4915112345678"),
    ],
)
def test_phones_become_e164(raw: str, normal: str) -> None:
    assert normalise_phone(raw) == normal
    assert hashed_phone(raw) == sha(normal)


@pytest.mark.parametrize("raw", [None, "", "   ", "not-an-email", "@example.com", "jane@"])
def test_empty_or_invalid_emails_are_not_hashed(raw: str | None) -> None:
    assert hashed_email(raw) is None


@pytest.mark.parametrize("raw", [None, "", "650 253 1234", "+0 123 4567", "+1 23", "+1234567890123456"])
def test_phones_without_a_country_code_or_of_the_wrong_length_are_not_hashed(raw: str | None) -> None:
    assert hashed_phone(raw) is None


def abandoner(
    engine: Engine,
    shop: Shop,
    *,
    email: str | None = None,
    phone: str | None = None,
    consent: dict[str, bool] | None = None,
    carts: int = 1,
) -> str:
    """A shopper who left `carts` carts at START; returns the anonymous id."""
    anon = random_id("anon")
    events = [
        identified(
            store_id=shop.store_id,
            anonymous_id=anon,
            email=email,
            phone=phone,
            consent={"ads": True} if consent is None else consent,
        )
    ]
    for _ in range(carts):
        events.append(
            product_added(
                item(price=2500),
                store_id=shop.store_id,
                anonymous_id=anon,
                cart_id=random_id("cart"),
                at=START + timedelta(seconds=1),
            )
        )
    engine.append(events)
    return anon


def export(engine: Engine, shop: Shop, require_ads_consent: bool = True) -> list[audiences.Member]:
    with engine.database.read() as uow:
        return audiences.abandoners(
            uow, shop.store_id, START, START + 2 * HOUR, require_ads_consent=require_ads_consent
        )


def test_only_shoppers_who_consented_to_ads_are_exported(engine: Engine, shop: Shop) -> None:
    abandoner(engine, shop, email="yes@example.com", consent={"ads": True, "email": True})
    abandoner(engine, shop, email="email-only@example.com", consent={"email": True})
    abandoner(engine, shop, email="refused@example.com", consent={"ads": False})
    engine.advance_clock(START + HOUR)

    assert export(engine, shop) == [audiences.Member(sha("yes@example.com"), None)]
    everyone = {m.email_sha256 for m in export(engine, shop, require_ads_consent=False)}
    assert everyone == {sha("yes@example.com"), sha("email-only@example.com"), sha("refused@example.com")}


def test_suppressed_identifiers_are_left_out_and_a_shopper_with_none_left_is_not_exported(
    engine: Engine, shop: Shop
) -> None:
    abandoner(engine, shop, email="bounced@example.com")
    abandoner(engine, shop, email="bounced-too@example.com", phone="+4915112345678")
    engine.advance_clock(START + HOUR)
    with engine.database.write() as uow:
        for address in ("bounced@example.com", "bounced-too@example.com"):
            uow.suppressions.add(shop.store_id, "email", address_key("email", address), "550 no such user", START)

    assert export(engine, shop) == [audiences.Member(None, sha("+4915112345678"))]


def test_carts_ordered_or_abandoned_outside_the_window_are_not_exported(engine: Engine, shop: Shop) -> None:
    bought = abandoner(engine, shop, email="bought@example.com")
    abandoner(engine, shop, email="left@example.com")
    engine.advance_clock(START + HOUR)
    with engine.database.read() as uow:
        shopper_id = uow.shoppers.find(shop.store_id, "anon", bought)
        assert shopper_id is not None
        (cart,) = uow.carts.for_shopper(shop.store_id, shopper_id)
    engine.append([order_completed(store_id=shop.store_id, anonymous_id=bought, cart_id=cart.cart_id, at=START + HOUR)])
    engine.advance_clock(START + HOUR + timedelta(minutes=1))

    assert export(engine, shop) == [audiences.Member(sha("left@example.com"), None)]
    with engine.database.read() as uow:
        assert audiences.abandoners(uow, shop.store_id, START + HOUR, START + 2 * HOUR) == []


def test_the_csv_has_a_header_and_one_row_per_shopper_with_nothing_in_clear(
    engine: Engine,
    shop: Shop,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    abandoner(engine, shop, email="Two.Carts@Example.com", phone="+1 650 253 1234", carts=2)
    abandoner(engine, shop, phone="+4915112345678")
    engine.advance_clock(START + HOUR)

    response = client.get("/api/v1/audiences/abandoners", params={**WINDOW, "format": "csv"}, headers=shop.admin)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["email_sha256", "phone_sha256"]
    assert sorted(rows[1:]) == sorted(
        [[sha("two.carts@example.com"), sha("+16502531234")], ["", sha("+4915112345678")]]
    )
    assert "@" not in response.text and "650" not in response.text.replace(sha("+16502531234"), "")


def test_a_stores_admin_key_never_exports_another_stores_shoppers(
    engine: Engine,
    shop: Shop,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    other = add_shop(engine)
    abandoner(engine, shop, email="mine@example.com")
    abandoner(engine, other, email="theirs@example.com")
    engine.advance_clock(START + HOUR)

    mine = client.get("/api/v1/audiences/abandoners", params=WINDOW, headers=shop.admin).json()
    theirs = client.get("/api/v1/audiences/abandoners", params=WINDOW, headers=other.admin).json()

    assert [m["email_sha256"] for m in mine["members"]] == [sha("mine@example.com")]
    assert [m["email_sha256"] for m in theirs["members"]] == [sha("theirs@example.com")]
    assert client.get("/api/v1/audiences/abandoners", params=WINDOW).status_code == 401
    assert client.get("/api/v1/audiences/abandoners", params=WINDOW, headers=shop.basic).status_code == 401


def test_a_bad_window_or_format_gets_a_400(shop: Shop, client: TestClient) -> None:  # type: ignore[type-arg]
    url = "/api/v1/audiences/abandoners"
    assert client.get(url, params={"format": "xml"}, headers=shop.admin).status_code == 400
    reversed_window = {"since": WINDOW["until"], "until": WINDOW["since"]}
    assert client.get(url, params=reversed_window, headers=shop.admin).status_code == 400
    assert client.get(url, params={"since": "yesterday-ish"}, headers=shop.admin).status_code == 400


def test_the_cli_writes_the_export_to_a_file(engine: Engine, shop: Shop, tmp_path: Path) -> None:
    abandoner(engine, shop, email="cli@example.com")
    engine.advance_clock(START + HOUR)
    out = tmp_path / "audience.csv"

    code = main(
        [
            *("audiences", "export", "--store", shop.name, "--data-dir", str(engine.settings.data_dir)),
            *("--out", str(out), "--since", WINDOW["since"], "--until", WINDOW["until"]),
        ]
    )

    assert code == 0
    assert out.read_text() == f"email_sha256,phone_sha256\n{sha('cli@example.com')},\n"


def test_require_ads_consent_is_read_from_the_guardrails_section() -> None:
    from cartrecover.journey_settings import parse_guardrails
    from cartrecover.settings import parse_duration

    assert parse_guardrails({"require_ads_consent": False}, parse_duration).require_ads_consent is False
    assert Guardrails().require_ads_consent is True
