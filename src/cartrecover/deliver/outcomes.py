"""Sending claimed steps and recording what happened, in the transaction after the send.

Sent: the step is done and the cart is RECOVERING. Retryable failure: the step waits with exponential
backoff, and after `max_attempts` becomes a dead letter with its reason (listable and replayable).
Permanent failure: the address is suppressed on that channel and the step is skipped.

A step with a coupon has its code created in the shop first (`issue_coupon`): the message never names a code
the checkout would reject. The shop failing for now is retried like a channel; the shop refusing the code
for good skips the step without suppressing the address, which did nothing wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cartrecover.domain.cart import CartStatus
from cartrecover.domain.contact import address_key
from cartrecover.domain.journey import StepStatus
from cartrecover.errors import DeliveryError, PermanentDelivery, RetryableDelivery
from cartrecover.ports.channels import OutboundMessage, Sender
from cartrecover.ports.coupons import CouponIssuer
from cartrecover.ports.outbox import Claim
from cartrecover.ports.unit_of_work import UnitOfWork

logger = logging.getLogger("cartrecover.deliver")
BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=4)


@dataclass(frozen=True)
class Outcome:
    """What sending one claim came to."""

    claim: Claim
    provider_id: str | None = None
    error: DeliveryError | None = None
    withdrawn: str | None = None  # not sent: the reason found just before sending (an order, an opt-out)
    coupon_refused: str | None = None  # not sent: the shop will never create the step's code


def issue_coupon(claim: Claim, issuer: CouponIssuer | None) -> Outcome | None:
    """Create the claim's code in the shop before the message names it; None when the send may go ahead."""
    step = claim.step
    if issuer is None or step.coupon is None or step.incentive is None:
        return None
    expires = step.coupon_expires or claim.at + step.incentive.valid_for  # the same on every attempt
    try:
        issuer.issue(step.store_id, step.coupon, step.incentive.percent, expires, starts_at=claim.at)
    except RetryableDelivery as exc:
        return Outcome(claim, error=RetryableDelivery(f"coupon not created: {exc.message}"))
    except PermanentDelivery as exc:
        return Outcome(claim, coupon_refused=f"coupon refused by the shop: {exc.message}")
    except Exception as exc:  # a bug in an adapter must not lose the step: retry, then dead letter
        logger.exception("creating the coupon of step %s failed unexpectedly", step.step_id)
        return Outcome(claim, error=RetryableDelivery(f"coupon not created: {type(exc).__name__}: {exc}"))
    return None


def send(claim: Claim, render: Callable[[Claim], OutboundMessage], senders: Mapping[str, Sender]) -> Outcome:
    """Render and send one claim; a failure becomes an outcome, never an exception."""
    channel = claim.step.channel.value if claim.step.channel else ""
    sender = senders.get(channel)
    if sender is None:
        return Outcome(claim, error=PermanentDelivery(f"no {channel} channel is configured"))
    try:
        return Outcome(claim, provider_id=sender.send(render(claim)))
    except DeliveryError as exc:
        return Outcome(claim, error=exc)
    except Exception as exc:  # a bug in a template or adapter must not lose the step: retry, then dead letter
        logger.exception("sending step %s failed unexpectedly", claim.step.step_id)
        return Outcome(claim, error=RetryableDelivery(f"{type(exc).__name__}: {exc}"))


def record(uow: UnitOfWork, outcome: Outcome, now: datetime, max_attempts: int) -> None:
    """Settle the step after its send: sent, retried later, dead, skipped (address suppressed if its fault)."""
    step, at = outcome.claim.step, outcome.claim.at
    step.lease_until = None
    channel = step.channel.value if step.channel else ""
    if outcome.withdrawn is not None:
        step.status, step.reason, step.sent_at = StepStatus.CANCELLED, outcome.withdrawn, None
        _note(uow, outcome.claim, at, "withdrawn", reason=outcome.withdrawn)
    elif outcome.coupon_refused is not None:
        step.status, step.reason, step.sent_at = StepStatus.SKIPPED, outcome.coupon_refused, None
        _note(uow, outcome.claim, at, "skipped: coupon refused", reason=outcome.coupon_refused)
    elif outcome.error is None:
        step.status, step.sent_at, step.provider_id, step.reason = StepStatus.SENT, at, outcome.provider_id, None
        _start_recovering(uow, outcome.claim, at)
        _note(uow, outcome.claim, at, "sent", channel=channel, message_id=step.message_id, coupon=step.coupon)
    elif isinstance(outcome.error, PermanentDelivery):
        step.status, step.reason, step.sent_at = StepStatus.SKIPPED, outcome.error.message, None
        key = address_key(channel, outcome.claim.address)
        uow.suppressions.add(step.store_id, channel, key, outcome.error.message, now)
        _note(uow, outcome.claim, at, "failed permanently; address suppressed", reason=outcome.error.message)
    elif step.attempts >= max_attempts:
        step.status, step.reason, step.sent_at = StepStatus.DEAD, outcome.error.message, None
        _note(uow, outcome.claim, at, "dead letter", reason=outcome.error.message, attempts=step.attempts)
    else:
        step.status, step.reason, step.sent_at = StepStatus.SCHEDULED, outcome.error.message, None
        step.due_at = now + min(BACKOFF * 4 ** (step.attempts - 1), MAX_BACKOFF)
        _note(uow, outcome.claim, at, "retrying", reason=outcome.error.message, next_attempt=step.due_at)
    uow.outbox.save(step)


def _start_recovering(uow: UnitOfWork, claim: Claim, at: datetime) -> None:
    cart = uow.carts.get(claim.step.store_id, claim.step.cart_id)
    if cart is not None and cart.status is CartStatus.ABANDONED:
        change = cart.start_recovery(at)
        uow.carts.save(cart)
        uow.timeline.add(
            cart.store_id,
            cart.cart_id,
            at,
            "state",
            {"from": change.before.value, "to": change.after.value, "reason": change.reason},
        )


def _note(uow: UnitOfWork, claim: Claim, at: datetime, status: str, **detail: object) -> None:
    step = claim.step
    entry = {
        "step": step.name,
        "status": status,
        "channel": step.channel.value if step.channel else None,
        "attempt": step.attempts,
        **{k: v for k, v in detail.items() if v is not None},
    }
    uow.timeline.add(step.store_id, step.cart_id, at, "message", entry)
