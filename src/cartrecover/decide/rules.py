"""The rule-based policy: the store's journey as configured, incentives only where the cart is worth it.

This is the seam where the learned policy plugs in later: it gets the same inputs and returns a `Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cartrecover.domain.cart import Cart
from cartrecover.domain.journey import Guardrails, Journey, Step, step_id

POLICY = "rules-v1"


@dataclass(frozen=True)
class Decision:
    """The steps planned for one abandonment, and why each looks the way it does."""

    policy: str
    steps: tuple[Step, ...]
    reasons: tuple[str, ...] = field(default_factory=tuple)


def plan(cart: Cart, journey: Journey, guardrails: Guardrails) -> Decision:
    """Every step of the journey, timed from the abandonment; an incentive only above its cart value."""
    assert cart.abandoned_at is not None, "plan only abandoned carts"
    steps, reasons = [], []
    for number, configured in enumerate(journey.steps):
        incentive = configured.incentive
        if incentive is not None and cart.value < incentive.min_cart_value:
            reasons.append(
                f"{configured.name}: no incentive, the cart is under {incentive.min_cart_value} (minor units)"
            )
            incentive = None
        if incentive is not None and incentive.percent > guardrails.max_discount_percent:
            reasons.append(f"{configured.name}: incentive capped at {guardrails.max_discount_percent} %")
            incentive = type(incentive)(guardrails.max_discount_percent, incentive.min_cart_value, incentive.valid_for)
        steps.append(
            Step(
                step_id=step_id(cart.cart_id, cart.abandoned_at, number),
                store_id=cart.store_id,
                cart_id=cart.cart_id,
                shopper_id=cart.shopper_id,
                number=number,
                name=configured.name,
                template=configured.template,
                channels=configured.channels,
                due_at=cart.abandoned_at + configured.delay,
                incentive=incentive,
            )
        )
    return Decision(POLICY, tuple(steps), tuple(reasons))
