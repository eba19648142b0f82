"""A real SMTP server for tests (aiosmtpd, on 127.0.0.1), and the keys and certificates the email tests need.

`MailServer` keeps what it receives, can be told to answer RCPT with a 4xx or 5xx, can be stopped (connections
are then refused) and started again on the same port. With `tls=` it offers STARTTLS and requires it (and AUTH)
before mail is accepted.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        """The parsed message."""
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    """The aiosmtpd handler: stores each message. `rcpt_reply` (e.g. "451 4.3.0 try later") answers every RCPT;
    `refused` maps an address to the reply it alone gets (e.g. "550 5.1.1 no such user")."""

    received: list[Received] = field(default_factory=list)
    rcpt_reply: str | None = None
    refused: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: SMTPProtocol, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.refused.get(address, self.rcpt_reply)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        tls = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw, tls, login))
        return "250 2.0.0 Ok: queued"


@dataclass(frozen=True)
class Credentials:
    """What the AUTH-requiring server accepts."""

    user: str
    password: str

    def __call__(
        self, server: SMTPProtocol, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.user.encode(),
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)  # not handled: 535


class MailServer:
    """An aiosmtpd server on a free 127.0.0.1 port; `stop()` makes it refuse connections, `start()` brings it back."""

    def __init__(
        self, tls: ssl.SSLContext | None = None, credentials: Credentials | None = None, *, implicit_tls: bool = False
    ) -> None:
        self.mailbox = Mailbox()
        self.host = "127.0.0.1"
        self.port = free_port()
        self._tls, self._credentials, self._implicit = tls, credentials, implicit_tls
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        """Everything accepted so far, oldest first."""
        return self.mailbox.received

    def start(self) -> None:
        """Listen (again) on the same port."""
        options: dict[str, Any] = {}
        if self._tls is not None and self._implicit:
            options = {"ssl_context": self._tls}
        elif self._tls is not None:
            options = {"tls_context": self._tls, "require_starttls": True, "auth_require_tls": True}
        if self._credentials is not None:
            options |= {"authenticator": self._credentials, "auth_required": True}
        self._controller = Controller(self.mailbox, hostname=self.host, port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running(server: MailServer) -> Any:
    """Start the server, and stop it afterwards whatever happens."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and the files it is in."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """What the SMTP server presents on STARTTLS."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def self_signed_certificate(folder: Path) -> Certificate:
    """A fresh key and self-signed certificate valid for 127.0.0.1 and localhost."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cartrecover test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert_file, key_file)


@dataclass(frozen=True)
class DkimKeyPair:
    """A DKIM private key file and the DNS TXT record that publishes its public half."""

    key_file: Path
    txt_record: bytes

    def dns(self, domain: str, selector: str) -> Any:
        """A `dnsfunc` for `dkim.verify` that knows only this key's record."""

        def lookup(name: bytes, timeout: int = 5) -> bytes | None:
            return self.txt_record if name == f"{selector}._domainkey.{domain}.".encode() else None

        return lookup


def dkim_key_pair(folder: Path) -> DkimKeyPair:
    """A fresh 2048-bit RSA key (as DKIM recommends) in a PEM file, and its `v=DKIM1; k=rsa; p=…` record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return DkimKeyPair(key_file, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


__all__ = [
    "Certificate",
    "Credentials",
    "DkimKeyPair",
    "MailServer",
    "Received",
    "dkim_key_pair",
    "running",
    "self_signed_certificate",
]
