"""Claiming due steps: every exit condition and guardrail is checked in the transaction that claims.

An order, an unsubscribe or a STOP recorded before the claim commits is seen by it: the step is cancelled
or skipped, never sent. A step claimed is leased; if its worker dies, the lease runs out and the step is
claimed again and re-sent under the same message id — at most the one in-flight send repeats.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cartrecover.domain.cart import CartStatus
from cartrecover.domain.contact import address_key
from cartrecover.domain.journey import Channel, Guardrails, Step, StepStatus
from cartrecover.ports.outbox import Claim
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

SENDABLE = (CartStatus.ABANDONED, CartStatus.RECOVERING)


@dataclass(frozen=True)
class Policy:
    """What claiming needs to know about a store."""

    guardrails: Guardrails
    timezone: str
    coupon_secret: bytes


def claim_due(
    uow: UnitOfWork, now: datetime, limit: int, lease: timedelta, policy_for: Callable[[int], Policy], *, at_due: bool
) -> tuple[list[Claim], int]:
    """Claim up to `limit` due steps; cancel, skip or reschedule the ones that must not go now.

    Returns the claims and how many due steps were handled in all.

    `at_due`: judge each step at its own due time (the manual clock, where time jumps) rather than at `now`.
    """
    claims = []
    due = uow.outbox.due(now, limit)
    for step in due:
        at = step.due_at if at_due and step.status is StepStatus.SCHEDULED else now
        claim = _claim_one(uow, step, at, now + lease, policy_for(step.store_id))
        if claim is not None:
            claims.append(claim)
    return claims, len(due)


def _claim_one(uow: UnitOfWork, step: Step, at: datetime, lease_until: datetime, policy: Policy) -> Claim | None:
    cart = uow.carts.get(step.store_id, step.cart_id)
    if cart is None or cart.status not in SENDABLE:
        _settle(uow, step, at, StepStatus.CANCELLED, f"cart is {cart.status.value if cart else 'gone'}")
        return None
    shopper = uow.shoppers.get(step.store_id, cart.shopper_id) or Shopper(step.store_id, cart.shopper_id)
    chosen, refusals = _channel(uow, step, shopper, policy.guardrails)
    if chosen is None:
        _settle(uow, step, at, StepStatus.SKIPPED, "; ".join(refusals))
        return None
    channel, address = chosen
    later = _after_quiet_hours(at, channel, shopper.timezone or policy.timezone, policy.guardrails)
    if later is not None:
        step.due_at, step.status = later, StepStatus.SCHEDULED
        uow.outbox.save(step)
        _note(uow, step, at, "deferred", f"quiet hours for {channel.value} until {later.isoformat()}")
        return None
    # A step whose lease ran out was counted by the caps when first claimed (its sent_at is set): counting it
    # again would make it refuse its own repeat and lose the message. Its first claim passed the caps.
    capped = None if step.status is StepStatus.SENDING else _over_cap(uow, step, at, policy.guardrails)
    if capped:
        _settle(uow, step, at, StepStatus.SKIPPED, capped)
        return None
    step.status, step.channel, step.lease_until = StepStatus.SENDING, channel, lease_until
    step.sent_at = at  # counted by the caps from now on, also by claims later in this same transaction
    step.attempts += 1
    if step.incentive is not None and step.coupon is None:
        step.coupon = coupon_code(policy.coupon_secret, step)
        step.coupon_expires = at + step.incentive.valid_for
    uow.outbox.save(step)
    return Claim(step=step, address=address, cart=cart, shopper=shopper, at=at)


def _channel(
    uow: UnitOfWork, step: Step, shopper: Shopper, guardrails: Guardrails
) -> tuple[tuple[Channel, str] | None, list[str]]:
    refusals = []
    for channel in step.channels:
        address = contact(shopper, channel)
        if address is None:
            refusals.append(f"no {channel.value} address")
        elif guardrails.require_consent and shopper.consent.get(channel.value) is not True:
            refusals.append(f"no consent for {channel.value}")
        elif why := uow.suppressions.reason(step.store_id, channel.value, address_key(channel.value, address)):
            refusals.append(f"{channel.value} suppressed ({why})")
        else:
            return (channel, address), refusals
    return None, refusals


def contact(shopper: Shopper, channel: Channel) -> str | None:
    """The shopper's address on a channel (the on-site nudge needs none: the site asks for it)."""
    if channel is Channel.EMAIL:
        return shopper.email
    if channel is Channel.SMS:
        return shopper.phone
    if channel is Channel.PUSH:
        subscription = shopper.traits.get("push_subscription")
        return str(subscription) if subscription else None
    return shopper.shopper_id


def _after_quiet_hours(at: datetime, channel: Channel, timezone: str, guardrails: Guardrails) -> datetime | None:
    """None if `at` is inside the channel's sending window in the shopper's time zone, else the window's next start."""
    window = guardrails.quiet_hours.get(channel)
    if window is None:
        return None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    start, end = window
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=zone).astimezone(UTC)


def _over_cap(uow: UnitOfWork, step: Step, at: datetime, guardrails: Guardrails) -> str | None:
    for count, window in guardrails.caps:
        if uow.outbox.sent_since(step.store_id, step.shopper_id, at - window) >= count:
            return f"frequency cap: {count} messages per {window}"
    return None


def coupon_code(secret: bytes, step: Step) -> str:
    """A code unique to the step's message, the same on every attempt, that cannot be guessed from the ids."""
    digest = hmac.new(secret, f"{step.store_id}/{step.step_id}".encode(), hashlib.sha256).hexdigest()
    return f"CR-{digest[:10].upper()}"


def _settle(uow: UnitOfWork, step: Step, at: datetime, status: StepStatus, reason: str) -> None:
    step.status, step.reason, step.lease_until = status, reason, None
    uow.outbox.save(step)
    _note(uow, step, at, status.value, reason)


def _note(uow: UnitOfWork, step: Step, at: datetime, status: str, reason: str) -> None:
    uow.timeline.add(step.store_id, step.cart_id, at, "step", {"step": step.name, "status": status, "reason": reason})


def withdrawn(uow: UnitOfWork, found: Claim, guardrails: Guardrails) -> str | None:
    """Why a claimed step must not go out after all (read just before its send), or None.

    A claim batch holds many steps; without this, an order (or an opt-out) recorded while the batch is being
    sent would let every step after it out. With it, at most the one send in flight follows the order.
    """
    step = found.step
    cart = uow.carts.get(step.store_id, step.cart_id)
    if cart is None or cart.status not in SENDABLE:
        return f"cart became {cart.status.value if cart else 'gone'} before sending"
    channel = step.channel.value if step.channel else ""
    shopper = uow.shoppers.get(step.store_id, cart.shopper_id)
    if guardrails.require_consent and (shopper is None or shopper.consent.get(channel) is not True):
        return f"consent for {channel} withdrawn before sending"
    if uow.suppressions.reason(step.store_id, channel, address_key(channel, found.address)):
        return f"{channel} suppressed before sending"
    return None
