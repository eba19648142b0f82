"""Twilio webhooks: inbound texts at `POST /webhooks/twilio?store=<name>`, delivery status at `/webhooks/twilio/status`.

Both are signed by Twilio (`X-Twilio-Signature`, HMAC-SHA1 keyed by the auth token of the `sms` channel URL,
over the full URL and the sorted form parameters); a missing or wrong signature gets 403, as Twilio's docs
ask, and nothing is stored. Consent changes go to the event log like every other input and the lifecycle
applies them: STOP suppresses SMS (only SMS) for the sender's number, START lifts it, HELP gets a help text.
Twilio reads the TwiML we answer as the reply text (on long codes with its default opt-out handling it
sends its own STOP/START confirmation instead, and ours is dropped).
"""

from __future__ import annotations

from functools import cache
from typing import Annotated
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from litestar import Request, Response, post
from litestar.params import QueryParameter

from cartrecover.entrypoints.http.common import Runtime, json_response, runtime
from cartrecover.ingest import twilio
from cartrecover.ports.stores import Store

StoreName = Annotated[str | None, QueryParameter(name="store", description="the store the Twilio number belongs to")]
StoreId = Annotated[int | None, QueryParameter(name="store_id", description="the store (added by the sender)")]
_DOC = {"tags": ["webhooks"]}
TWIML = "application/xml"
MAX_FORM = 64 * 1024


@post("/webhooks/twilio", status_code=200, summary="Receive an inbound SMS (STOP, START, HELP)", **_DOC)  # type: ignore[arg-type]
async def twilio_inbound(request: Request, store_name: StoreName = None) -> Response[bytes]:  # type: ignore[type-arg]
    """An inbound text: STOP words opt the number out of SMS, START words back in, HELP/INFO get help."""
    rt = runtime(request)
    form, refusal = await _signed_form(request, rt)
    store = rt.engine.stores.by_name(store_name) if store_name else None
    if refusal or store is None:
        return _forbidden(refusal or f"no store named {store_name!r}; configure the number's webhook with ?store=")
    word = twilio.keyword(form.get("Body", ""))
    event = twilio.inbound_event(store.store_id, form, rt.engine.clock.now())
    if event is not None:
        await rt.writer.append([event])
    name = escape(store.name)
    replies = {
        twilio.Keyword.STOP: f"{name}: you are unsubscribed and will get no more texts from us. Reply START to resubscribe.",
        twilio.Keyword.START: f"{name}: you are resubscribed to cart reminders by text. Reply STOP to opt out.",
        twilio.Keyword.HELP: f"{name}: reminders about carts you left on our shop. Reply STOP to opt out, START to opt back in.",
    }
    return _twiml(replies.get(word))


@post("/webhooks/twilio/status", status_code=200, summary="Receive an SMS delivery status", **_DOC)  # type: ignore[arg-type]
async def twilio_status(
    request: Request,  # type: ignore[type-arg]
    store_name: StoreName = None,
    store_id: StoreId = None,
) -> Response[bytes]:
    """A status callback: a delivery that failed for good (21610, 30006, …) suppresses the number for SMS.

    Every other status is acknowledged and not kept for now: the send was recorded when Twilio accepted it,
    and delivered/undelivered receipts are not part of the timeline yet.
    """
    rt = runtime(request)
    form, refusal = await _signed_form(request, rt)
    store = _store(rt, store_name, store_id)
    if refusal or store is None:
        return _forbidden(refusal or "no such store; the status callback URL names it with ?store_id= or ?store=")
    event = twilio.status_event(store.store_id, form, rt.engine.clock.now())
    stored = sum(await rt.writer.append([event])) if event is not None else 0
    return json_response({"success": True, "stored": stored})


async def _signed_form(request: Request, rt: Runtime) -> tuple[dict[str, str], str | None]:  # type: ignore[type-arg]
    """The form parameters, and why the request is refused (None when Twilio's signature checks out)."""
    url = rt.engine.settings.channels.get("sms", "")
    if not url.startswith("twilio:"):
        return {}, "the sms channel is not a Twilio account (channels.sms = twilio://…), so nothing can be verified"
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}, f"body is over {MAX_FORM} bytes"
    try:
        params = parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}, "body is not form-encoded UTF-8"
    sent = request.headers.get("x-twilio-signature")
    if not sent:
        return {}, "no X-Twilio-Signature header"
    if not twilio.signed(_account(url).auth_token, _urls(request, rt), params, sent):
        return {}, "X-Twilio-Signature does not match this URL and body signed with the sms channel's auth token"
    return dict(params), None


@cache
def _account(url: str) -> twilio.TwilioAccount:
    return twilio.TwilioAccount.from_url(url)


def _urls(request: Request, rt: Runtime) -> list[str]:  # type: ignore[type-arg]
    """The URL as we received it, and as the public URL (a proxy in front may have changed scheme or host)."""
    query = request.url.query
    public = rt.engine.settings.resolved_public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")
    return [str(request.url), public]


def _store(rt: Runtime, name: str | None, store_id: int | None) -> Store | None:
    if store_id is not None:
        return rt.engine.stores.by_id(store_id)
    return rt.engine.stores.by_name(name) if name else None


def _forbidden(message: str) -> Response[bytes]:
    return json_response({"code": "forbidden", "message": message}, 403)


def _twiml(message: str | None) -> Response[bytes]:
    inner = f"<Message>{message}</Message>" if message else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'.encode(), media_type=TWIML)


ROUTES = [twilio_inbound, twilio_status]
