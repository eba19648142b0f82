"""Starting and stopping a cart's journey, in the transaction that changed the cart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from cartrecover.domain.cart import Cart
from cartrecover.domain.journey import Step, StepStatus
from cartrecover.ports.unit_of_work import UnitOfWork


def start(
    uow: UnitOfWork,
    cart: Cart,
    policy: str,
    steps: Sequence[Step],
    reasons: Sequence[str],
    *,
    propensity: float | None = None,
    detail: Mapping[str, object] | None = None,
) -> None:
    """Schedule the planned steps and put the decision on the cart's timeline (with its propensity, if random)."""
    uow.outbox.add(steps)
    planned = [
        {
            "step": s.name,
            "due_at": s.due_at,
            "channels": [c.value for c in s.channels],
            "template": s.template,
            "incentive_percent": s.incentive.percent if s.incentive else None,
        }
        for s in steps
    ]
    at = cart.abandoned_at or steps[0].due_at
    decision: dict[str, object] = {"policy": policy, "steps": planned, "reasons": list(reasons)}
    if propensity is not None:
        decision["propensity"] = propensity
    decision.update(detail or {})
    uow.timeline.add(cart.store_id, cart.cart_id, at, "decision", decision)


def stop(uow: UnitOfWork, cart: Cart, at: datetime, reason: str) -> int:
    """Cancel every step still waiting; a step already being sent finishes (at most that one goes out)."""
    cancelled = 0
    for step in uow.outbox.for_cart(cart.store_id, cart.cart_id):
        if step.status is StepStatus.SCHEDULED:
            step.status, step.reason = StepStatus.CANCELLED, reason
            uow.outbox.save(step)
            uow.timeline.add(
                cart.store_id, cart.cart_id, at, "step", {"step": step.name, "status": "cancelled", "reason": reason}
            )
            cancelled += 1
    return cancelled


def requeue(uow: UnitOfWork, step: Step, now: datetime) -> bool:
    """Replay a dead letter: schedule it now with fresh attempts (the claim checks every guardrail again)."""
    if step.status is not StepStatus.DEAD:
        return False
    step.status, step.due_at, step.attempts, step.reason = StepStatus.SCHEDULED, now, 0, "replayed from dead letters"
    uow.outbox.save(step)
    uow.timeline.add(step.store_id, step.cart_id, now, "step", {"step": step.name, "status": "replayed"})
    return True
