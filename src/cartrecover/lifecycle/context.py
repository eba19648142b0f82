"""What handlers need besides the unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cartrecover.domain.cart import AbandonmentRules, Cart, StateChanged
from cartrecover.ports.eventlog import EventLog
from cartrecover.ports.unit_of_work import UnitOfWork

ChangeHook = Callable[[UnitOfWork, Cart, StateChanged], None]


def _nothing(uow: UnitOfWork, cart: Cart, change: StateChanged) -> None:
    """The default hook: state changes concern nobody else."""


_NAMESPACE = uuid.UUID("6f1c2b55-4d3a-4c4e-9a57-3f8f1d2c9b10")


@dataclass(frozen=True)
class Context:
    """Per-store rules, the event log (for erasure), the hook that hears every cart state change (in the same
    transaction), and ids derived from message ids so replays agree."""

    rules_for: Callable[[int], AbandonmentRules]
    log: EventLog
    on_change: ChangeHook = _nothing

    @staticmethod
    def derived_id(prefix: str, store_id: int, message_id: str) -> str:
        """A stable id for something first created by this message."""
        return f"{prefix}_{uuid.uuid5(_NAMESPACE, f'{store_id}:{message_id}').hex[:20]}"
