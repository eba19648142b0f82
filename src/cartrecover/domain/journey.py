"""Journeys: what to send after a cart is abandoned, and the steps scheduled for one abandonment.

A journey is configuration (steps with a delay, channels in order of preference, a template and an
optional incentive). Planning turns it into `Step`s for one abandonment; each step is sent at most once,
under a stable message id, or skipped or cancelled with its reason.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta


class Channel(enum.StrEnum):
    """How a message reaches a shopper."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    ONSITE = "onsite"


@dataclass(frozen=True)
class Incentive:
    """A discount offered with a step, only to carts worth at least `min_cart_value` (minor units)."""

    percent: int
    min_cart_value: int = 0
    valid_for: timedelta = timedelta(hours=72)


@dataclass(frozen=True)
class JourneyStep:
    """One message of a journey, `delay` after abandonment, on the first of `channels` the shopper can get."""

    name: str
    delay: timedelta
    channels: tuple[Channel, ...]
    template: str
    incentive: Incentive | None = None


@dataclass(frozen=True)
class Journey:
    """The steps sent after an abandonment, in order."""

    steps: tuple[JourneyStep, ...]


DEFAULT_JOURNEY = Journey(
    (
        JourneyStep("reminder", timedelta(hours=1), (Channel.EMAIL,), "reminder"),
        JourneyStep("second-reminder", timedelta(hours=24), (Channel.EMAIL,), "reminder"),
        JourneyStep(
            "last-chance",
            timedelta(hours=72),
            (Channel.SMS, Channel.EMAIL),
            "incentive",
            Incentive(percent=10, min_cart_value=10_000),
        ),
    )
)


@dataclass(frozen=True)
class Guardrails:
    """Limits every send is checked against when it is claimed.

    `quiet_hours` gives, per channel, the local window in which it may send (start, end); `caps` are
    (count, window) pairs across all channels: at most `count` messages to one shopper in any `window`.
    """

    quiet_hours: dict[Channel, tuple[time, time]] = field(default_factory=lambda: {Channel.SMS: (time(9), time(20))})
    caps: tuple[tuple[int, timedelta], ...] = ((2, timedelta(hours=24)), (4, timedelta(days=7)))
    max_discount_percent: int = 30
    max_attempts: int = 6
    require_consent: bool = True
    require_ads_consent: bool = True  # ad audiences hold only shoppers with consent["ads"]


class StepStatus(enum.StrEnum):
    """Where a scheduled step is."""

    SCHEDULED = "scheduled"  # waiting for its time (or for a retry)
    SENDING = "sending"  # claimed by a delivery worker, lease running
    SENT = "sent"
    SKIPPED = "skipped"  # a guardrail said no (consent, contact, cap, suppression)
    CANCELLED = "cancelled"  # the journey stopped (order, shopper back, cart closed)
    DEAD = "dead"  # retries exhausted: a dead letter, replayable

    @property
    def is_final(self) -> bool:
        """Whether nothing more will happen to the step (unless a dead letter is replayed)."""
        return self in (StepStatus.SENT, StepStatus.SKIPPED, StepStatus.CANCELLED, StepStatus.DEAD)


@dataclass
class Step:
    """One planned message for one abandonment of one cart."""

    step_id: str
    store_id: int
    cart_id: str
    shopper_id: str
    number: int
    name: str
    template: str
    channels: tuple[Channel, ...]
    due_at: datetime
    incentive: Incentive | None = None
    status: StepStatus = StepStatus.SCHEDULED
    channel: Channel | None = None
    attempts: int = 0
    lease_until: datetime | None = None
    coupon: str | None = None
    coupon_expires: datetime | None = None  # fixed when the code is made: the shop, the message and the link agree
    sent_at: datetime | None = None
    provider_id: str | None = None
    reason: str | None = None

    @property
    def message_id(self) -> str:
        """The RFC 5322 Message-ID and idempotency key: the same for every attempt of this step."""
        digest = hashlib.sha256(f"{self.store_id}/{self.step_id}".encode()).hexdigest()[:32]
        return f"<{digest}@cartrecover>"


def step_id(cart_id: str, abandoned_at: datetime, number: int) -> str:
    """A stable id for step `number` of the journey started by this abandonment."""
    return f"{cart_id}@{abandoned_at.strftime('%Y%m%dT%H%M%S%f')}#{number}"
