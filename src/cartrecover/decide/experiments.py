"""Which variant of the store's experiment a treated shopper's abandoned cart gets, and with what probability.

Fixed splits hash (store, experiment, shopper) against the variants' weights: no state is needed to compute the
variant, but it is kept on the shopper once made, so it follows them across devices like the holdout group. The
logged probability is the variant's share of the weights.

Thompson sampling decides per abandonment (a finished cart is the bandit's reward): each variant's recovery rate
has a Beta(1 + recovered, 1 + expired) posterior from the store's finished carts of the experiment; one draw per
variant from an RNG seeded by the cart and its abandonment (so a replay decides the same), the highest draw wins.
Its probability is estimated by Monte Carlo: the share of `DRAWS` such rounds, the deciding one included (so it is
never 0), that the same variant wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cartrecover.domain.cart import Cart
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

DRAWS = 2000
CANDIDATE, RUNNING = "candidate", "running"  # the two sides of a model's trial

__all__ = ["CANDIDATE", "DRAWS", "RUNNING", "Assignment", "assign", "by_weight", "thompson", "trial_arm"]


@dataclass(frozen=True)
class Assignment:
    """The variant a cart gets, the probability it had of getting it, and why."""

    experiment: str
    variant: str
    probability: float
    reason: str

    @property
    def policy(self) -> str:
        """How the decision names it on the timeline: `experiment:<name>/<variant>`."""
        return f"experiment:{self.experiment}/{self.variant}"


def by_weight(store_id: int, experiment: str, shopper_id: str, weights: Mapping[str, float]) -> Assignment:
    """The variant a hash of (store, experiment, shopper) falls on, each variant taking its share of the weights."""
    digest = hashlib.sha256(f"experiment/{store_id}/{experiment}/{shopper_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights.values())
    names = list(weights)
    chosen = names[-1]  # if rounding leaves the position past the last bound
    for name in names:
        if position < weights[name]:
            chosen = name
            break
        position -= weights[name]
    return _fixed(experiment, chosen, weights)


def trial_arm(store_id: int, version: int, shopper_id: str, share: float) -> Assignment:
    """The side of model `version`'s trial a shopper is on: the candidate for `share` of them, by a fixed split of
    the test named after the version (a shopper stays on their side for the trial's life, a new trial re-splits)."""
    return by_weight(store_id, f"model v{version} trial", shopper_id, {CANDIDATE: share, RUNNING: 1 - share})


def thompson(experiment: str, counts: Mapping[str, tuple[int, int]], seed: bytes, draws: int = DRAWS) -> Assignment:
    """Thompson sampling over the variants in `counts` (variant → (recovered, expired)); see the module docstring."""
    import numpy as np  # imported when a bandit decides, so that importing the policy costs nothing

    names = list(counts)
    wins = np.array([counts[n][0] for n in names], dtype=float)
    losses = np.array([counts[n][1] for n in names], dtype=float)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big"))
    samples = rng.beta(1 + wins, 1 + losses, size=(draws, len(names)))
    best = samples.argmax(axis=1)
    chosen = int(best[0])  # the deciding round is the first of the Monte Carlo rounds
    probability = float(np.mean(best == chosen))
    seen = ", ".join(f"{n} {w}/{w + lost}" for n, (w, lost) in counts.items())
    reason = f"experiment {experiment}: Thompson sampling on recovered/finished carts ({seen}) chose {names[chosen]}"
    return Assignment(experiment, names[chosen], probability, f"{reason} with probability {probability:.3f}")


def assign(uow: UnitOfWork, cart: Cart, experiment: str, method: str, weights: Mapping[str, float]) -> Assignment:
    """Assign a treated shopper's abandoned cart to a variant (`method` "fixed" or "thompson") and record it.

    The assignment goes on the cart (`experiment`, `variant`, `assignment_probability`), and for fixed splits on
    the shopper too, who keeps their variant for as long as it exists.
    """
    assert cart.abandoned_at is not None, "assign only abandoned carts"
    if method == "thompson":
        finished = uow.carts.finished_by_variant(cart.store_id, experiment)
        counts = {name: finished.get(name, (0, 0)) for name in weights}
        seed = f"{cart.store_id}/{experiment}/{cart.cart_id}/{cart.abandoned_at.isoformat()}".encode()
        chosen = thompson(experiment, counts, seed)
    else:
        chosen = _sticky(uow, cart, experiment, weights)
    cart.experiment, cart.variant, cart.assignment_probability = experiment, chosen.variant, chosen.probability
    uow.carts.save(cart)
    return chosen


def _sticky(uow: UnitOfWork, cart: Cart, experiment: str, weights: Mapping[str, float]) -> Assignment:
    shopper = uow.shoppers.get(cart.store_id, cart.shopper_id) or Shopper(cart.store_id, cart.shopper_id)
    kept = shopper.experiments.get(experiment)
    if kept is not None and kept in weights:
        return _fixed(experiment, kept, weights)
    chosen = by_weight(cart.store_id, experiment, shopper.shopper_id, weights)
    shopper.experiments[experiment] = chosen.variant
    uow.shoppers.save(shopper)
    return chosen


def _fixed(experiment: str, variant: str, weights: Mapping[str, float]) -> Assignment:
    probability = weights[variant] / sum(weights.values())
    split = " / ".join(f"{n} {w:g}" for n, w in weights.items())
    return Assignment(
        experiment, variant, probability, f"experiment {experiment}: fixed split ({split}) gave {variant}"
    )
