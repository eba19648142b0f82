"""The SMS sender against a fake Twilio over real HTTP: what it posts, and how each answer is translated."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cartrecover.adapters.twilio.sender import TwilioSender
from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery
from cartrecover.ingest.twilio import TwilioAccount
from cartrecover.ports.channels import OutboundMessage
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio, running

CALLBACK = "https://shop.example/webhooks/twilio/status"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running() as served:
        yield served


def sender(fake: FakeTwilio, tmp_path: Path, **url: str) -> TwilioSender:
    return TwilioSender.from_url(fake.url(**url), tmp_path)


def text(to: str = "+12125550123", body: str = "shop: your cart is waiting") -> OutboundMessage:
    return OutboundMessage(
        message_id="<m1@cartrecover>", channel="sms", to=to, subject="", text=body, store_id=7, step_id="c@1#2"
    )


def test_a_text_is_posted_form_encoded_with_basic_auth_and_the_sid_comes_back(fake: FakeTwilio, tmp_path: Path) -> None:
    sid = sender(fake, tmp_path, callback=CALLBACK).send(text())

    (posted,) = fake.messages
    assert sid == posted["sid"] and sid.startswith("SM")
    assert posted["To"] == "+12125550123" and posted["From"] == FROM
    assert posted["Body"] == "shop: your cart is waiting"
    assert posted["StatusCallback"] == f"{CALLBACK}?store_id=7"
    assert "MessagingServiceSid" not in posted


def test_a_messaging_service_replaces_the_from_number(fake: FakeTwilio, tmp_path: Path) -> None:
    sender(fake, tmp_path, service="MG" + "1" * 32).send(text())

    (posted,) = fake.messages
    assert posted["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in posted
    assert "StatusCallback" not in posted


def test_a_recipient_who_texted_stop_is_a_permanent_failure(fake: FakeTwilio, tmp_path: Path) -> None:
    fake.opted_out.add("+12125550123")

    with pytest.raises(PermanentDelivery, match="21610"):
        sender(fake, tmp_path).send(text())
    assert fake.messages == []


@pytest.mark.parametrize(("to", "code"), [("not-a-number", "21211"), ("+12125550100", "21614")])
def test_invalid_and_non_mobile_numbers_are_permanent_failures(
    fake: FakeTwilio, tmp_path: Path, to: str, code: str
) -> None:
    if code == "21614":
        fake.fail(400, 21614, "'To' number is not a valid mobile number")

    with pytest.raises(PermanentDelivery, match=code):
        sender(fake, tmp_path).send(text(to=to))


@pytest.mark.parametrize(("status", "code"), [(500, None), (503, None), (429, 20429)])
def test_server_errors_and_rate_limits_are_retried(fake: FakeTwilio, tmp_path: Path, status: int, code: int) -> None:
    fake.fail(status, code, "busy", times=1)
    twilio = sender(fake, tmp_path)

    with pytest.raises(RetryableDelivery, match=str(code or status)):
        twilio.send(text())
    assert twilio.send(text()).startswith("SM")  # the next attempt goes through
    assert len(fake.messages) == 1


def test_another_client_error_is_permanent_with_twilios_code_and_message(fake: FakeTwilio, tmp_path: Path) -> None:
    fake.fail(400, 21617, "The concatenated message body exceeds the 1600 character limit.")

    with pytest.raises(PermanentDelivery, match="twilio 21617: The concatenated message body exceeds"):
        sender(fake, tmp_path).send(text())


def test_wrong_credentials_are_retried_into_a_dead_letter_rather_than_suppressing_the_shopper(
    fake: FakeTwilio, tmp_path: Path
) -> None:
    url = fake.url().replace(AUTH_TOKEN, "wrong-token")

    with pytest.raises(RetryableDelivery, match="20003"):
        TwilioSender.from_url(url, tmp_path).send(text())
    assert fake.requests == 1 and fake.messages == []


def test_a_refused_connection_is_retried_and_no_httpx_error_escapes(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@127.0.0.1:{port}?from=%2B15005550006&scheme=http"

    with pytest.raises(RetryableDelivery, match="unreachable"):
        TwilioSender.from_url(url, tmp_path).send(text())


def test_the_channel_url_is_read_once_for_sender_and_webhooks_and_the_token_never_shows() -> None:
    account = TwilioAccount.from_url(
        "twilio://AC123:s3cr%2Ft@api.twilio.com?from=+15005550006&status_callback=https://x.example/s%3Fa%3D1"
    )

    assert account.messages_url == "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
    assert account.auth_token == "s3cr/t" and account.from_number == "+15005550006"
    assert account.status_callback == "https://x.example/s?a=1"
    assert "s3cr" not in repr(account)


@pytest.mark.parametrize(
    "url",
    [
        "twilio://api.twilio.com?from=%2B1500",
        "twilio://AC1:t@api.twilio.com",
        "twilio://AC1:t@api.twilio.com?from=%2B1500&messaging_service_sid=MG1",
        "twilio://AC1:t@api.twilio.com?from=%2B1500&scheme=ftp",
        "twilio://AC1:t@api.twilio.com?from=%2B1500&form=typo",
    ],
)
def test_a_channel_url_that_cannot_work_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        TwilioAccount.from_url(url)
