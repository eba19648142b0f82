"""A cart's journey on one screen: which state change starts or stops it, and how due steps go out.

cart becomes ABANDONED            → decide.learned.observe (the feature row)
                                  → holdout, an experiment's variant, or decide.learned.decide
                                    (the model's best plan, an exploring one, or decide.rules.plan)
                                  → decisions log + schedule.journeys.start     (same transaction)
ABANDONED/RECOVERING → any other  → schedule.journeys.stop                         (same transaction)
due steps                         → schedule.claim.claim_due      (transaction 1: every guardrail checked)
                                  → deliver.outcomes.issue_coupon (no transaction: the shop creates the code)
                                  → deliver.outcomes.send         (no transaction: the channel is called)
                                  → deliver.outcomes.record       (transaction 2: sent, retry, dead, suppress)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache

from cartrecover.decide import experiments, learned, rules
from cartrecover.decide.online import RecentSends
from cartrecover.deliver import outcomes
from cartrecover.deliver.render import Brand, Renderer
from cartrecover.domain import holdout
from cartrecover.domain.cart import Cart, CartStatus, StateChanged
from cartrecover.domain.holdout import Group
from cartrecover.domain.journey import Journey, Step
from cartrecover.models.bundle import Bundle
from cartrecover.ports.cache import Cache
from cartrecover.ports.channels import OutboundMessage, Sender
from cartrecover.ports.coupons import CouponIssuer
from cartrecover.ports.outbox import Claim
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.stores import Store
from cartrecover.ports.unit_of_work import Database, UnitOfWork
from cartrecover.schedule import claim, journeys
from cartrecover.settings import Settings

_log = logging.getLogger(__name__)

LINKS_VALID_FOR = timedelta(days=30)
JOURNEY_RUNNING = (CartStatus.ABANDONED, CartStatus.RECOVERING)
MODEL_REFRESH = 30.0  # seconds between checks for a newly trained or rolled-back model


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
        online: Cache | None = None,
    ) -> None:
        self._settings, self._database, self._store_for = settings, database, store_for
        self.recent_sends = RecentSends(online) if online is not None else None  # online features (decide.online)
        self._senders, self._renderer, self._secret, self._manual = senders, renderer, secret, manual_clock
        self._issuers = coupon_issuers or {}  # by store name
        self._journeys: Callable[[str, str, str | None], Journey] = cache(self._journey_of)
        self._bundles: dict[int, tuple[float, int | None, Bundle | None]] = {}  # store → (checked, version, bundle)
        self._trials: dict[int, tuple[float, tuple[int, float, Bundle | None] | None]] = {}  # store → (checked, trial)

    def on_cart_change(self, uow: UnitOfWork, cart: Cart, change: StateChanged) -> None:
        """The change hook: decide on abandonment, stop the journey when the cart leaves abandonment."""
        if change.after is CartStatus.ABANDONED:
            self._decide(uow, cart)
        elif change.before in JOURNEY_RUNNING and change.after not in JOURNEY_RUNNING:
            journeys.stop(uow, cart, change.at, f"journey stopped: {change.reason}")

    def _decide(self, uow: UnitOfWork, cart: Cart) -> None:
        """Log the decision with the cart's features and start its journey (none for the holdout)."""
        store = self._store_for(cart.store_id)
        name, timezone = (store.name, store.timezone) if store else ("", "UTC")
        shopper = uow.shoppers.get(cart.store_id, cart.shopper_id)
        models = self._models(uow, cart.store_id)
        learning = self._settings.decisions.policy == "learned"  # with "rules" no model decides, on trial or not
        trial, arm = self._trial(uow, cart.store_id) if learning else None, None
        if trial is not None:  # a model on trial decides for its share of shoppers, by a hash kept per version
            arm = experiments.trial_arm(cart.store_id, trial[0], cart.shopper_id, trial[1])
            models = trial[2] if arm.variant == experiments.CANDIDATE else models
        row = learned.observe(uow, cart, shopper, timezone, models.clv if models else None, cache=self.recent_sends)
        if self._group(uow, cart, shopper, name) is Group.HOLDOUT:
            uow.decisions.add(learned.holdout(cart, row, Group.HOLDOUT.value))
            journeys.start(uow, cart, "holdout", (), ("holdout: tracked, never contacted",))
            return
        currency = cart.currency or (store.currency if store else "USD")
        chosen = self._variant(uow, cart, name)
        journey = self._journeys(name, currency, chosen.variant if chosen else None)
        planned = rules.plan(cart, journey, self._settings.guardrails)
        if chosen is not None:  # an experiment runs: its variant's journey, by its own assignment
            policy, reasons = f"{planned.policy}+{chosen.policy}", (chosen.reason, *planned.reasons)
            record = learned.experiment(
                cart,
                shopper,
                row,
                policy_name=policy,
                journey=journey,
                steps=planned.steps,
                probability=chosen.probability,
            )
            uow.decisions.add(record)
            journeys.start(uow, cart, policy, planned.steps, reasons, propensity=chosen.probability)
            return
        decided = learned.decide(
            uow, cart, shopper, row,
            config=self._settings.decisions,
            economics=self._settings.decisions.economics(self._settings.guardrails.max_discount_percent),
            models=models,
            rules=(planned.policy, planned.steps, planned.reasons),
            timezone=timezone,
        )  # fmt: skip
        record = decided.record
        if trial is not None and arm is not None:  # on the cart too: the report shows the two sides as a test's
            record.trial, record.arm = trial[0], arm.variant
            cart.experiment, cart.variant, cart.assignment_probability = arm.experiment, arm.variant, arm.probability
            uow.carts.save(cart)
        uow.decisions.add(record)
        detail = {"plan": record.plan, "explored": record.explored, "scores": record.scores}
        detail |= {"contributions": [list(c) for c in record.contributions], "model_version": record.model_version}
        journeys.start(
            uow, cart, record.policy, decided.steps, decided.reasons, propensity=record.propensity, detail=detail
        )

    def _models(self, uow: UnitOfWork, store_id: int) -> Bundle | None:
        """The store's active model bundle, checked against the registry at most every `MODEL_REFRESH` seconds."""
        now = time.monotonic()
        cached = self._bundles.get(store_id)
        if cached is not None and now - cached[0] < MODEL_REFRESH:
            return cached[2]
        version = uow.models.active_version(store_id)
        if cached is not None and cached[1] == version:
            self._bundles[store_id] = (now, version, cached[2])
            return cached[2]
        found = uow.models.active(store_id) if version is not None else None
        bundle = self._load(store_id, found[0], found[1]) if found else None
        self._bundles[store_id] = (now, version, bundle)
        return bundle

    @staticmethod
    def _load(store_id: int, version: int, body: bytes) -> Bundle | None:
        try:
            return Bundle.from_bytes(body, version)
        except ValueError as exc:  # a bundle of another version's format: the rules decide until it is retrained
            _log.warning(
                "store %s: model v%s cannot be used (%s); the rule-based journey decides", store_id, version, exc
            )
            return None

    def _trial(self, uow: UnitOfWork, store_id: int) -> tuple[int, float, Bundle | None] | None:
        """The store's model on trial (version, share, bundle), checked at most every `MODEL_REFRESH` seconds; a
        bundle that cannot be loaded leaves its side to the rules, as an unusable active one does."""
        now = time.monotonic()
        cached = self._trials.get(store_id)
        if cached is not None and now - cached[0] < MODEL_REFRESH:
            return cached[1]
        found = uow.models.trial(store_id)
        trial = None
        if found is not None:
            version, share = found
            if cached is not None and cached[1] is not None and cached[1][:2] == (version, share):
                trial = cached[1]
            else:
                trial = (version, share, self._load(store_id, version, uow.models.body(store_id, version)))
        self._trials[store_id] = (now, trial)
        return trial

    def _group(self, uow: UnitOfWork, cart: Cart, found: Shopper | None, store_name: str) -> Group:
        """The shopper's holdout group, assigned at their first abandonment and kept; copied onto the cart."""
        shopper = found or Shopper(cart.store_id, cart.shopper_id)
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
        claims: list[Claim] = []
        try:
            with self._database.write() as uow:
                claims, handled = claim.claim_due(uow, now, limit, lease, self._policy, at_due=self._manual)
        finally:  # a claim sets its step's send time; a commit that failed may still have committed
            self._sends_changed(claims)
        try:
            self._send_and_record(claims, now)
        finally:  # recording keeps or clears it
            self._sends_changed(claims)
        return handled

    def _send_and_record(self, claims: Sequence[Claim], now: datetime) -> None:
        """Send each claim and record it before the next one goes out: a worker that dies mid-batch repeats only
        the send in flight (the rest of its claims are taken again once their lease runs out). Claims that sent
        nothing (withdrawn, refused) are recorded with the next send."""
        unrecorded: list[outcomes.Outcome] = []
        for found in claims:
            outcome = self._send_unless_withdrawn(found)
            unrecorded.append(outcome)
            if outcome.provider_id is not None or found is claims[-1]:
                with self._database.write() as uow:
                    for each in unrecorded:
                        outcomes.record(uow, each, now, self._settings.guardrails.max_attempts)
                unrecorded = []

    def close(self) -> None:
        """Release the online-features cache."""
        if self.recent_sends is not None:
            self.recent_sends.close()

    def _sends_changed(self, claims: Sequence[Claim]) -> None:
        """The claimed steps' shoppers' cached send times are stale now (decide.online)."""
        if self.recent_sends is not None and claims:
            self.recent_sends.sends_changed({(c.step.store_id, c.step.shopper_id) for c in claims})

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
