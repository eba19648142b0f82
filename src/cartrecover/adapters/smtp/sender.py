"""Email over SMTP: one multipart text + HTML message per step, DKIM-signed when a key is configured.

    smtp://user:password@host:587?starttls=true&from=Shop%20Name%20<shop@example.com>&timeout=10
    smtps://user:password@host:465?from=…                     implicit TLS

Query parameters (percent-encoded; a `+` stays a `+`, so `shop+news@example.com` works):
    from            the From header and the envelope sender; required
    starttls        `true`: upgrade the plain connection before AUTH and MAIL (never falls back to plain text)
    timeout         seconds for connecting and for each reply; default 10
    cafile          a PEM file of the CA certificates to trust instead of the system's (a private relay, tests)
    dkim_domain, dkim_selector, dkim_key
                    sign as d=domain, s=selector with this PEM RSA private key; the signature covers From, To,
                    Subject, Date, Message-ID, the MIME headers, List-Unsubscribe and List-Unsubscribe-Post
                    (RFC 8058: receivers offer one-click unsubscribe only when those two are signed)
Relative paths are read from the data directory. The user and password go in the URL's userinfo
(percent-encode `@` and `:`); AUTH is used when a user is given.

What a failure means, translated here (nothing from smtplib, ssl or socket leaves this module):
    connection refused, timeout, TLS failure, disconnect, any 4xx reply      → RetryableDelivery
    the recipient refused with 550, 551 or 553 (or 5.1.x after DATA)        → PermanentDelivery: suppressed
    any other 5xx (AUTH, relay or policy refusal, sender refused, 5.7.x)    → RetryableDelivery
The last line is our set-up's fault, not the address's: suppressing the shopper for it would be wrong, so the
step retries, then dead-letters with the server's reply and can be replayed once the set-up is fixed.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dkim  # type: ignore[import-untyped]

from cartrecover.errors import ConfigError, DeliveryError, PermanentDelivery, RetryableDelivery
from cartrecover.ports.channels import OutboundMessage

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
_RECIPIENT_GONE = frozenset({550, 551, 553})  # mailbox unavailable, user not local, mailbox name not allowed
_URL_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
_TRUE = frozenset({"1", "true", "yes", "on"})


class _Policy(EmailPolicy):
    """Policy SMTP, except that the unsubscribe headers are never folded: the default would RFC 2047-encode a
    URL longer than a line, and mail clients do not decode URLs."""

    def fold_binary(self, name: str, value: str) -> bytes:
        """The header line as bytes, as-is when it is an unsubscribe header in plain ASCII."""
        if name.lower() in _URL_HEADERS and str(value).isascii():
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _Policy(linesep="\r\n")  # what email.policy.SMTP is, plus the exception above


@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing identity: d= domain, s= selector and the private key (never printed)."""

    domain: str
    selector: str
    private_key: bytes = field(repr=False)

    def sign(self, message: bytes) -> bytes:
        """The `DKIM-Signature: …` header line for the message (relaxed/relaxed, rsa-sha256)."""
        signature: bytes = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
        return signature


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect, and who the mail is from."""

    host: str
    port: int
    sender: str  # the From header, e.g. "Shop Name <shop@example.com>"
    implicit_tls: bool = False
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    cafile: Path | None = None
    dkim: DkimKey | None = None


class SmtpSender:
    """Sends each message over its own SMTP connection.

    A connection per send is simple and correct: an error belongs to exactly one message (no RSET state after a
    half-failed transaction, no idle connection the server has silently dropped between two clock ticks), and
    nothing is shared, so any number of delivery workers may call `send` at once. The cost, a TCP (and TLS)
    handshake per message, is small at the rate carts are abandoned; pool connections if a benchmark says so.
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._envelope_from = parseaddr(config.sender)[1]
        if "@" not in self._envelope_from:
            raise ConfigError(f"smtp: from={config.sender!r} is not an email address")
        self._tls: ssl.SSLContext | None = None
        if config.implicit_tls or config.starttls:
            self._tls = ssl.create_default_context(cafile=str(config.cafile) if config.cafile else None)

    @classmethod
    def from_url(cls, url: str, data_dir: Path) -> SmtpSender:
        """A sender for an `smtp://` or `smtps://` URL (see the module's docstring)."""
        return cls(parse_url(url, data_dir))

    def send(self, message: OutboundMessage) -> str:
        """Deliver one message; the provider id is its Message-ID (the same on every attempt of the step)."""
        raw = self.compose(message)
        with _translated(message.to):
            self._transmit(message.to, raw)
        return message.message_id

    def compose(self, message: OutboundMessage, now: datetime | None = None) -> bytes:
        """The message as it goes on the wire: multipart/alternative text + HTML, signed when a key is set."""
        mail = EmailMessage(policy=POLICY)
        try:
            mail["To"] = message.to
        except ValueError as exc:  # a line break in the address: it can never be sent to
            raise PermanentDelivery(f"not a usable email address: {message.to!r}") from exc
        mail["From"] = self.config.sender
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(now or datetime.now(UTC))
        mail["Message-ID"] = message.message_id
        for name, value in message.headers.items():  # List-Unsubscribe, List-Unsubscribe-Post, …
            del mail[name]
            mail[name] = value
        # Quoted-printable keeps every line 7-bit and short: no 8BITMIME needed, and no relay re-encodes the body
        # (which would break the DKIM body hash).
        mail.set_content(message.text, cte="quoted-printable")
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html", cte="quoted-printable")
        raw = mail.as_bytes()
        return raw if self.config.dkim is None else self.config.dkim.sign(raw) + raw

    def _transmit(self, to: str, raw: bytes) -> None:
        smtp = self._connect()
        try:
            if self.config.starttls:
                smtp.starttls(context=self._tls)
            if self.config.user is not None:
                smtp.login(self.config.user, self.config.password or "")
            smtp.sendmail(self._envelope_from, [to], raw)
        except BaseException:
            smtp.close()
            raise
        # Accepted: a failing QUIT must not turn a delivered message into a retry (and a duplicate).
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        smtp.close()

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.implicit_tls:
            return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=self._tls)
        return smtplib.SMTP(config.host, config.port, timeout=config.timeout)


@contextlib.contextmanager
def _translated(to: str) -> Iterator[None]:
    """smtplib's, ssl's and socket's errors as the channel port's two kinds."""
    try:
        yield
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = exc.recipients.get(to, next(iter(exc.recipients.values()), (0, b"")))
        raise _refusal(code, reply, recipient=True) from exc
    except smtplib.SMTPDataError as exc:
        raise _refusal(exc.smtp_code, exc.smtp_error, recipient=False) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, AUTH failed, HELO refused, …
        raise RetryableDelivery(f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise RetryableDelivery(f"SMTP server does not support what the URL asks for: {exc}") from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise RetryableDelivery(f"SMTP server disconnected: {exc or 'no reason given'}") from exc
    except smtplib.SMTPException as exc:
        raise RetryableDelivery(f"SMTP: {exc}") from exc
    except ssl.SSLError as exc:  # before OSError: it is one
        raise RetryableDelivery(f"SMTP TLS failed: {exc}") from exc
    except TimeoutError as exc:
        raise RetryableDelivery("SMTP server timed out") from exc
    except (OSError, UnicodeError) as exc:  # refused, unreachable, reset; an address smtplib cannot encode
        raise RetryableDelivery(f"SMTP: {type(exc).__name__}: {exc}") from exc


def _refusal(code: int, reply: bytes | str, *, recipient: bool) -> DeliveryError:
    """A refusal of the message: permanent only when it says the address itself is bad."""
    text = _text(reply)
    reason = f"SMTP {code} {text}".strip()
    enhanced = text.split(" ", 1)[0]
    if recipient and code in _RECIPIENT_GONE and not enhanced.startswith("5.7."):  # 5.7.x: relay/policy, ours
        return PermanentDelivery(reason)
    if not recipient and code >= 500 and enhanced.startswith("5.1."):  # servers that check mailboxes after DATA
        return PermanentDelivery(reason)
    return RetryableDelivery(reason)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def parse_url(url: str, data_dir: Path) -> SmtpConfig:
    """The settings in an `smtp://` / `smtps://` URL; ConfigError names what is wrong (never the password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(f"smtp: expected an smtp:// or smtps:// URL, got {parts.scheme}://")
    query = _query(parts.query)
    unknown = set(query) - {"from", "starttls", "timeout", "cafile", "dkim_domain", "dkim_selector", "dkim_key"}
    if unknown:
        raise ConfigError(f"smtp: unknown URL parameter(s): {', '.join(sorted(unknown))}")
    if not parts.hostname:
        raise ConfigError("smtp: the URL names no host")
    if not query.get("from"):
        raise ConfigError("smtp: the URL needs ?from=Name%20<address@domain> (the From of every message)")
    implicit = parts.scheme == "smtps"
    starttls = query.get("starttls", "").lower() in _TRUE
    if implicit and starttls:
        raise ConfigError("smtp: smtps:// is TLS from the start; starttls=true is for smtp://")
    try:
        port = parts.port or (465 if implicit else 587 if starttls else 25)
        timeout = float(query.get("timeout", "10"))
    except ValueError as exc:
        raise ConfigError(f"smtp: {exc}") from exc
    cafile = _path(query["cafile"], data_dir) if "cafile" in query else None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        sender=query["from"],
        implicit_tls=implicit,
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
        cafile=cafile,
        dkim=_dkim(query, data_dir),
    )


def _query(query: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in query.split("&") if part)
    return {unquote(key): unquote(value[0]) if value else "" for key, *value in pairs}


def _path(value: str, data_dir: Path) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else data_dir / path
    if not path.is_file():
        raise ConfigError(f"smtp: no such file: {path}")
    return path


def _dkim(query: dict[str, str], data_dir: Path) -> DkimKey | None:
    names = ("dkim_domain", "dkim_selector", "dkim_key")
    given = [name for name in names if query.get(name)]
    if not given:
        return None
    if len(given) < len(names):
        raise ConfigError("smtp: DKIM needs all of dkim_domain, dkim_selector and dkim_key")
    key = DkimKey(query["dkim_domain"], query["dkim_selector"], _path(query["dkim_key"], data_dir).read_bytes())
    try:  # a bad key fails at start-up, not on every send
        key.sign(b"From: a@b\r\nSubject: check\r\n\r\nbody\r\n")
    except dkim.DKIMException as exc:
        raise ConfigError(f"smtp: dkim_key cannot sign: {exc}") from exc
    return key
