"""The channel port: one adapter per way of reaching a shopper (SMTP, Twilio, web push, console, …)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutboundMessage:
    """A rendered message, ready for its channel. `message_id` is the same on every attempt of a step."""

    message_id: str
    channel: str
    to: str
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    store_id: int = 0
    step_id: str = ""


class Sender(Protocol):
    """Delivers messages of one channel. Called only by the delivery worker, outside any transaction.

    Returns the provider's id for the message. Raises RetryableDelivery when trying again later may work
    (connection refused, 4xx SMTP, 5xx HTTP, rate limits) and PermanentDelivery when it never will
    (hard bounce, an unsubscribed number): the address is then suppressed.
    """

    def send(self, message: OutboundMessage) -> str:
        """Deliver one message."""
        ...
