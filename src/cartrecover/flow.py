"""A cart's journey on one screen: which state change starts or stops it, and how due steps go out.

cart becomes ABANDONED            → decide.rules.plan → schedule.journeys.start   (same transaction)
ABANDONED/RECOVERING → any other  → schedule.journeys.stop                         (same transaction)
due steps                         → schedule.claim.claim_due      (transaction 1: every guardrail checked)
                                  → deliver.outcomes.issue_coupon (no transaction: the shop creates the code)
                                  → deliver.outcomes.send         (no transaction: the channel is called)
                                  → deliver.outcomes.record       (transaction 2: sent, retry, dead, suppress)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache

from cartrecover.decide import experiments, rules
from cartrecover.deliver import outcomes
from cartrecover.deliver.render import Brand, Renderer
from cartrecover.domain import holdout
from cartrecover.domain.cart import Cart, CartStatus, StateChanged
from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import Journey, Step
from cartrecover.ports.channels import OutboundMessage, Sender
from cartrecover.ports.coupons import CouponIssuer
from cartrecover.ports.outbox import Claim
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.stores import Store
from cartrecover.ports.unit_of_work import Database, UnitOfWork
from cartrecover.schedule import claim, journeys
from cartrecover.settings import Settings

LINKS_VALID_FOR = timedelta(days=30)
JOURNEY_RUNNING = (CartStatus.ABANDONED, CartStatus.RECOVERING)


class Journeys:
    """Plans journeys when carts are abandoned, stops them when carts move on, and delivers due steps."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        store_for: Callable[[int], Store | None],
        senders: Mapping[str, Sender],
        coupon_issuers: Mapping[str, CouponIssuer] | None = None,
        renderer: Renderer,
        secret: bytes,
        manual_clock: bool,
    ) -> None:
        self._settings, self._database, self._store_for = settings, database, store_for
        self._senders, self._renderer, self._secret, self._manual = senders, renderer, secret, manual_clock
        self._issuers = coupon_issuers or {}  # by store name
        self._journeys: Callable[[str, str, str | None], Journey] = cache(self._journey_of)

    def on_cart_change(self, uow: UnitOfWork, cart: Cart, change: StateChanged) -> None:
        """The change hook: start a journey on abandonment, stop it when the cart leaves abandonment."""
        if change.after is CartStatus.ABANDONED:
            store = self._store_for(cart.store_id)
            if self._group(uow, cart, store.name if store else "") is Group.HOLDOUT:
                journeys.start(uow, cart, "holdout", (), ("holdout: tracked, never contacted",))
                return
            currency = cart.currency or (store.currency if store else "USD")
            chosen = self._variant(uow, cart, store.name if store else "")
            journey = self._journeys(store.name if store else "", currency, chosen.variant if chosen else None)
            decision = rules.plan(cart, journey, self._settings.guardrails)
            if chosen is None:
                journeys.start(uow, cart, decision.policy, decision.steps, decision.reasons)
            else:
                policy, reasons = f"{decision.policy}+{chosen.policy}", (chosen.reason, *decision.reasons)
                journeys.start(uow, cart, policy, decision.steps, reasons, propensity=chosen.probability)
        elif change.before in JOURNEY_RUNNING and change.after not in JOURNEY_RUNNING:
            journeys.stop(uow, cart, change.at, f"journey stopped: {change.reason}")

    def _group(self, uow: UnitOfWork, cart: Cart, store_name: str) -> Group:
        """The shopper's holdout group, assigned at their first abandonment and kept; copied onto the cart."""
        shopper = uow.shoppers.get(cart.store_id, cart.shopper_id) or Shopper(cart.store_id, cart.shopper_id)
        if shopper.group is None:
            shopper.group = holdout.assign(
                cart.store_id, shopper.shopper_id, self._settings.holdout_share_for(store_name)
            )
            uow.shoppers.save(shopper)
        cart.group = shopper.group
        uow.carts.save(cart)
        return Group(shopper.group)

    def _variant(self, uow: UnitOfWork, cart: Cart, store_name: str) -> experiments.Assignment | None:
        """The variant of the store's experiment this treated cart gets (recorded on it), or None."""
        experiment = self._settings.experiment_for(store_name)
        if experiment is None:
            if cart.experiment is not None:  # abandoned again after its experiment ended
                cart.experiment = cart.variant = cart.assignment_probability = None
                uow.carts.save(cart)
            return None
        weights = {v.name: v.weight for v in experiment.variants}
        return experiments.assign(uow, cart, experiment.name, experiment.assignment, weights)

    def _journey_of(self, store_name: str, currency: str, variant: str | None) -> Journey:
        experiment = self._settings.experiment_for(store_name)
        chosen = experiment.variant(variant) if experiment is not None and variant is not None else None
        configured = chosen.journey if chosen is not None else None
        return (configured or self._settings.journey_for(store_name)).for_currency(currency)

    def deliver_due(self, now: datetime, limit: int = 200) -> int:
        """Claim, send and record up to `limit` due steps; returns how many steps were handled."""
        lease = self._settings.delivery_lease
        with self._database.write() as uow:
            claims, handled = claim.claim_due(uow, now, limit, lease, self._policy, at_due=self._manual)
        sent = [self._send_unless_withdrawn(found) for found in claims]
        if sent:
            with self._database.write() as uow:
                for outcome in sent:
                    outcomes.record(uow, outcome, now, self._settings.guardrails.max_attempts)
        return handled

    def dead_letters(self, store_id: int | None, limit: int = 1000) -> list[Step]:
        """Steps whose retries ran out, newest first."""
        with self._database.read() as uow:
            return uow.outbox.dead(store_id, limit)

    def replay_dead(self, store_id: int | None, step_ids: Sequence[str] | None, now: datetime) -> int:
        """Schedule dead letters again now (all of them, or the ones named); returns how many."""
        with self._database.write() as uow:
            dead = uow.outbox.dead(store_id, 100_000)
            chosen = [s for s in dead if step_ids is None or s.step_id in step_ids]
            return sum(journeys.requeue(uow, step, now) for step in chosen)

    def _send_unless_withdrawn(self, found: Claim) -> outcomes.Outcome:
        with self._database.read() as uow:
            reason = claim.withdrawn(uow, found, self._settings.guardrails)
        if reason is not None:
            return outcomes.Outcome(found, withdrawn=reason)
        failed = outcomes.issue_coupon(found, self._issuer_for(found.step.store_id))
        return failed or outcomes.send(found, self._render, self._senders)

    def _issuer_for(self, store_id: int) -> CouponIssuer | None:
        store = self._store_for(store_id)
        return self._issuers.get(store.name) if store else None

    def _policy(self, store_id: int) -> claim.Policy:
        store = self._store_for(store_id)
        return claim.Policy(self._settings.guardrails, store.timezone if store else "UTC", self._secret)

    def _render(self, found: Claim) -> OutboundMessage:
        store = self._store_for(found.step.store_id)
        brand = Brand(store.name if store else "our shop", store.currency if store else "USD")
        return self._renderer.render(found, brand, expires=found.at + LINKS_VALID_FOR)
