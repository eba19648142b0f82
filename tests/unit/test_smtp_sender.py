"""The SMTP sender against a real SMTP server (aiosmtpd on 127.0.0.1): what arrives, DKIM, TLS, AUTH, failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest

from cartrecover.adapters.smtp.sender import SmtpSender
from cartrecover.errors import ConfigError, PermanentDelivery, RetryableDelivery
from cartrecover.ports.channels import OutboundMessage
from tests.factories import random_id
from tests.smtp_server import (
    Certificate,
    Credentials,
    MailServer,
    dkim_key_pair,
    running,
    self_signed_certificate,
)

FROM = "Shop%20Name%20<shop+carts@shop.example>"
UNSUBSCRIBE = "https://shop.example/u/" + "tOkEn-" * 30  # longer than a header line: must not be folded


def outbound(to: str = "shopper@example.com", **fields: object) -> OutboundMessage:
    message_id = f"<{random_id('m')}@cartrecover>"
    values: dict[str, object] = {
        "message_id": message_id,
        "channel": "email",
        "to": to,
        "subject": "Your cart at Café Ünïcode is waiting",
        "text": "1 × Linen shirt  25.00 EUR\nTotal: 25.00 EUR\nhttps://shop.example/r/abc",
        "html": '<p>1 × <b>Linen shirt</b> 25.00 EUR</p><a href="https://shop.example/r/abc">Return</a>',
        "headers": {
            "Message-ID": message_id,
            "List-Unsubscribe": f"<{UNSUBSCRIBE}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        **fields,
    }
    return OutboundMessage(**values)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[MailServer]:
    with running(MailServer()) as started:
        yield started


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def sender_for(server: MailServer, tmp_path: Path, extra: str = "", scheme: str = "smtp") -> SmtpSender:
    return SmtpSender.from_url(f"{scheme}://127.0.0.1:{server.port}?from={FROM}&timeout=5{extra}", tmp_path)


def test_a_message_arrives_as_text_and_html_with_its_message_id_and_one_click_unsubscribe_headers(
    server: MailServer, tmp_path: Path
) -> None:
    message = outbound()

    provider_id = sender_for(server, tmp_path).send(message)

    (got,) = server.received
    assert provider_id == message.message_id
    assert got.mail_from == "shop+carts@shop.example" and got.rcpt_tos == ["shopper@example.com"]
    mail = got.message
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["From"] == "Shop Name <shop+carts@shop.example>" and mail["To"] == "shopper@example.com"
    assert mail["Subject"] == "Your cart at Café Ünïcode is waiting"
    assert mail["Message-ID"] == message.message_id and mail["Date"] is not None
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire exactly as given: an RFC 2047-encoded or folded URL is one mail clients cannot use.
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in got.raw
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == message.text + "\n"
    assert html.get_content().replace("\r\n", "\n") == (message.html or "") + "\n"
    assert all(len(line) <= 78 and line.isascii() for line in got.raw.split(b"\r\n") if b"List-Unsubscribe" not in line)


def test_the_dkim_signature_verifies_and_covers_the_one_click_unsubscribe_headers(
    server: MailServer, tmp_path: Path
) -> None:
    keys = dkim_key_pair(tmp_path / "keys")
    sender = sender_for(server, tmp_path, f"&dkim_domain=shop.example&dkim_selector=s1&dkim_key={keys.key_file}")

    sender.send(outbound())

    (got,) = server.received
    dns = keys.dns("shop.example", "s1")
    assert dkim.verify(got.raw, dnsfunc=dns)
    signature = got.message["DKIM-Signature"]
    signed = set(re.sub(r"\s", "", signature).split("h=")[1].split(";")[0].lower().split(":"))
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} <= signed
    assert "d=shop.example" in signature and "s=s1" in signature
    tampered = got.raw.replace(UNSUBSCRIBE.encode(), b"https://evil.example/u/x")
    assert tampered != got.raw and not dkim.verify(tampered, dnsfunc=dns)
    no_one_click = got.raw.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Clicks")
    assert no_one_click != got.raw and not dkim.verify(no_one_click, dnsfunc=dns)


def test_starttls_and_auth_are_used_when_the_url_asks_and_the_certificate_is_trusted_through_cafile(
    certificate: Certificate, tmp_path: Path
) -> None:
    secure = MailServer(tls=certificate.server_context(), credentials=Credentials("shop", "p@ss:word"))
    with running(secure):
        sender = SmtpSender.from_url(
            f"smtp://shop:p%40ss%3Aword@127.0.0.1:{secure.port}?starttls=true&from={FROM}"
            f"&timeout=5&cafile={certificate.cert_file}",
            tmp_path,
        )
        sender.send(outbound())

    (got,) = secure.received
    assert got.tls and got.login == "shop"
    assert got.message["To"] == "shopper@example.com"


def test_implicit_tls_with_smtps(certificate: Certificate, tmp_path: Path) -> None:
    secure = MailServer(tls=certificate.server_context(), implicit_tls=True)
    with running(secure):
        sender_for(secure, tmp_path, f"&cafile={certificate.cert_file}", scheme="smtps").send(outbound())

    (got,) = secure.received
    assert got.tls


def test_a_certificate_that_is_not_trusted_is_a_retryable_failure_and_nothing_is_sent(
    certificate: Certificate, tmp_path: Path
) -> None:
    secure = MailServer(tls=certificate.server_context(), credentials=Credentials("shop", "secret"))
    with running(secure), pytest.raises(RetryableDelivery, match="TLS"):
        SmtpSender.from_url(
            f"smtp://shop:secret@127.0.0.1:{secure.port}?starttls=true&from={FROM}&timeout=5", tmp_path
        ).send(outbound())
    assert secure.received == []


def test_a_wrong_password_is_retryable_and_never_suppresses_the_shopper(
    certificate: Certificate, tmp_path: Path
) -> None:
    secure = MailServer(tls=certificate.server_context(), credentials=Credentials("shop", "secret"))
    with running(secure), pytest.raises(RetryableDelivery, match="535"):
        SmtpSender.from_url(
            f"smtp://shop:wrong@127.0.0.1:{secure.port}?starttls=true&from={FROM}"
            f"&timeout=5&cafile={certificate.cert_file}",
            tmp_path,
        ).send(outbound())
    assert secure.received == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 Try again later", RetryableDelivery),
        ("452 4.2.2 Mailbox full", RetryableDelivery),
        ("550 5.1.1 No such user", PermanentDelivery),
        ("551 5.1.6 User not local", PermanentDelivery),
        ("553 5.1.3 Mailbox name not allowed", PermanentDelivery),
        ("550 5.7.1 Relaying denied", RetryableDelivery),  # our set-up's fault, not the address's
        ("554 5.7.1 Rejected by policy", RetryableDelivery),
    ],
)
def test_a_refused_recipient_is_permanent_only_when_the_address_itself_is_bad(
    server: MailServer, tmp_path: Path, reply: str, error: type[Exception]
) -> None:
    server.mailbox.rcpt_reply = reply

    with pytest.raises(error) as raised:
        sender_for(server, tmp_path).send(outbound())

    assert type(raised.value) is error
    assert reply.split(maxsplit=1)[0] in str(raised.value) and server.received == []


def test_a_server_that_is_down_is_a_retryable_failure(server: MailServer, tmp_path: Path) -> None:
    sender = sender_for(server, tmp_path)
    server.stop()

    with pytest.raises(RetryableDelivery, match="Connection refused"):
        sender.send(outbound())

    server.start()
    sender.send(outbound())
    assert len(server.received) == 1


def test_an_address_with_a_line_break_is_permanent_and_injects_nothing(server: MailServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentDelivery, match="not a usable email address"):
        sender_for(server, tmp_path).send(outbound(to="victim@example.com\r\nBcc: everyone@example.com"))
    assert server.received == []


def test_the_url_sets_host_port_tls_credentials_and_sender(tmp_path: Path) -> None:
    sender = SmtpSender.from_url(
        "smtp://user%40shop:pa%2Fss@mail.example?starttls=true&from=Shop%20<news+x@shop.example>", tmp_path
    )
    config = sender.config
    assert (config.host, config.port, config.starttls, config.implicit_tls) == ("mail.example", 587, True, False)
    assert (config.user, config.password, config.sender) == ("user@shop", "pa/ss", "Shop <news+x@shop.example>")
    assert config.timeout == 10 and config.dkim is None
    assert "pa/ss" not in repr(config)
    assert SmtpSender.from_url("smtps://mail.example?from=a@b.example", tmp_path).config.port == 465
    assert SmtpSender.from_url("smtp://mail.example?from=a@b.example", tmp_path).config.port == 25


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("smtp://mail.example", "from="),
        ("smtp://mail.example?from=nobody", "not an email address"),
        ("smtp://mail.example?from=a@b.example&tls=yes", "unknown URL parameter"),
        ("smtp://mail.example?from=a@b.example&dkim_domain=b.example", "DKIM needs all"),
        ("smtp://mail.example?from=a@b.example&cafile=missing.pem", "no such file"),
        ("smtps://mail.example?from=a@b.example&starttls=true", "TLS from the start"),
        ("smtp://mail.example?from=a@b.example&timeout=soon", "soon"),
    ],
)
def test_a_wrong_url_is_a_config_error_that_says_what_is_wrong(tmp_path: Path, url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        SmtpSender.from_url(url, tmp_path)


def test_a_dkim_key_that_cannot_sign_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="dkim_key"):
        SmtpSender.from_url(
            "smtp://mail.example?from=a@b.example&dkim_domain=b.example&dkim_selector=s1&dkim_key=bad.pem", tmp_path
        )
