"""A push service on 127.0.0.1 that speaks enough of RFC 8030/8291/8292 for the web push channel's tests.

It hands out subscriptions with real P-256 keys (as a browser would), and for each POST it checks the VAPID
`Authorization: vapid t=<JWT>, k=<key>` header (signature, audience, expiry, the expected key) and the `TTL`
header, decrypts the aes128gcm body with the subscription's private key, records it, and answers with
`status` (201 unless told otherwise).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    """Base64url without padding, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """The inverse of `b64url`."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Delivery:
    """One push the service accepted or refused."""

    subscription: str
    headers: dict[str, str]
    payload: dict[str, Any] | None
    status: int
    problems: list[str] = field(default_factory=list)


class FakePushService:
    """Start with `with FakePushService(vapid_public_key) as push:`; `push.status` sets the next answers."""

    def __init__(self, vapid_public_key: str) -> None:
        self.vapid_public_key = vapid_public_key
        self.status = 201
        self.deliveries: list[Delivery] = []
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakePushService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def subscribe(self) -> dict[str, Any]:
        """A new subscription, as `PushManager.subscribe()` gives it to the page: endpoint, p256dh, auth."""
        name = secrets.token_hex(8)
        private = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self._keys[name] = (private, auth)
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": f"{self.origin}/push/{name}", "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}

    def accepted(self) -> list[Delivery]:
        """Deliveries answered with a 2xx."""
        return [d for d in self.deliveries if 200 <= d.status < 300]

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        name = path.rsplit("/", 1)[-1]
        problems = self._check_vapid(headers.get("authorization", ""))
        if "ttl" not in headers or not headers["ttl"].isdigit():
            problems.append("no TTL header")
        payload = None
        if name not in self._keys:
            problems.append("unknown subscription")
        elif headers.get("content-encoding") != "aes128gcm":
            problems.append(f"content-encoding {headers.get('content-encoding')!r}")
        else:
            private, auth = self._keys[name]
            try:
                payload = json.loads(http_ece.decrypt(body, private_key=private, auth_secret=auth, version="aes128gcm"))
            except Exception as exc:  # any failure to decrypt is what the test must see
                problems.append(f"cannot decrypt: {exc!r}")
        status = 400 if problems else self.status
        self.deliveries.append(Delivery(name, headers, payload, status, problems))
        return status

    def _check_vapid(self, authorization: str) -> list[str]:
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return [f"Authorization is not vapid: {authorization[:20]!r}"]
        params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        token, key = params.get("t", ""), params.get("k", "")
        if key != self.vapid_public_key:
            return ["k is not the shop's VAPID public key"]
        try:
            header, claims, signature = token.split(".")
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
            raw = unb64url(signature)
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
            found = json.loads(unb64url(claims))
        except (ValueError, InvalidSignature) as exc:
            return [f"VAPID token does not verify: {exc!r}"]
        problems = []
        if found.get("aud") != self.origin:
            problems.append(f"aud is {found.get('aud')!r}, not {self.origin!r}")
        if not isinstance(found.get("exp"), int) or found["exp"] <= time.time():
            problems.append("exp missing or past")
        if not str(found.get("sub", "")).startswith(("mailto:", "https://")):
            problems.append("sub is not a mailto: or https: URL")
        return problems

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = service._receive(self.path, headers, body)
                self.send_response(status)
                if status == 201:
                    self.send_header("Location", f"{service.origin}/message/{len(service.deliveries)}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
