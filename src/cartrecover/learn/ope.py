"""Off-policy evaluation: a candidate policy's value estimated from decisions another policy logged.

Each logged decision i gives the reward r_i of the action the logging policy took, the probability μ_i with which
it took it (logged when it decided), and the probability π_i the candidate policy gives that same action in the
same context. With importance weights w_i = π_i / μ_i (optionally clipped at `clip`):

- `ips`: mean(w·r), unbiased;
- `snips`: Σ w·r / Σ w, self-normalised: a little bias, much less variance when weights are large;
- `direct`: mean of a reward model's expected reward under the candidate policy, q̂(x_i, π); no weights, biased
  as far as the model is wrong;
- `doubly_robust`: mean(q̂(x_i, π) + w·(r − q̂(x_i, a_i))), unbiased when either the weights or the model are right.

Assumptions: the logged propensities μ are the probabilities the logging policy actually used (known, not
estimated); positivity, i.e. every action the candidate can take in a context had μ > 0 there (an action the
logging policy never takes cannot be evaluated; the estimators cannot see such actions, so they cannot warn); and
decisions independent of each other given their contexts. Clipping trades that unbiasedness for variance: the
clip used is stated in the result.

Intervals are 95 % by default: normal (CLT) on the per-decision terms, by the delta method for `snips`; or a seeded
percentile bootstrap over decisions. Neither includes the error of a reward model fitted on the same data: fit
it on other data (cross-fitting) for `doubly_robust` and `direct`. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Estimate", "direct", "doubly_robust", "ips", "snips"]

Floats = NDArray[np.float64]
_BOOTSTRAP_CHUNK = 100


@dataclass(frozen=True)
class Estimate:
    """A policy's estimated value per decision, its interval, and what it rests on."""

    estimator: str
    value: float
    low: float
    high: float
    n: int
    effective_sample_size: float  # Kish's (Σw)² / Σw² of the weights used; n for the direct method
    clip: float | None = None  # the largest weight allowed, if weights were clipped
    interval: str = "normal"  # "normal" (CLT) or "bootstrap" (percentile)
    level: float = 0.95


def ips(
    reward: ArrayLike,
    logged_propensity: ArrayLike,
    target_probability: ArrayLike,
    *,
    clip: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Inverse propensity scoring: mean of w·r over the logged decisions."""
    r, w = _weighted(reward, logged_propensity, target_probability, clip)
    return _estimate("ips", w * r, np.ones_like(w), w, clip=clip, bootstrap=bootstrap, seed=seed, level=level)


def snips(
    reward: ArrayLike,
    logged_propensity: ArrayLike,
    target_probability: ArrayLike,
    *,
    clip: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Self-normalised inverse propensity scoring: Σ w·r / Σ w (ValueError when every weight is 0)."""
    r, w = _weighted(reward, logged_propensity, target_probability, clip)
    if not w.sum() > 0:
        raise ValueError("every importance weight is 0: the target policy never takes a logged action")
    return _estimate("snips", w * r, w, w, clip=clip, bootstrap=bootstrap, seed=seed, level=level)


def direct(expected_reward: ArrayLike, *, bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> Estimate:
    """Direct method: mean over the logged contexts of the reward model's expected reward under the target policy."""
    (q_target,) = _arrays(expected_reward=expected_reward)
    return _estimate(
        "direct", q_target, np.ones_like(q_target), None, clip=None, bootstrap=bootstrap, seed=seed, level=level
    )


def doubly_robust(
    reward: ArrayLike,
    logged_propensity: ArrayLike,
    target_probability: ArrayLike,
    predicted_reward: ArrayLike,
    expected_reward: ArrayLike,
    *,
    clip: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Doubly robust: the model's expected reward under the target policy plus the weighted error on the logged action.

    `predicted_reward` is q̂(x_i, a_i) for the logged action, `expected_reward` is Σ_a π(a | x_i) q̂(x_i, a).
    """
    r, w = _weighted(reward, logged_propensity, target_probability, clip)
    q_logged, q_target = _arrays(predicted_reward=predicted_reward, expected_reward=expected_reward)
    if q_logged.size != r.size:
        raise ValueError(f"predicted_reward and expected_reward need {r.size} values, one per logged decision")
    terms = q_target + w * (r - q_logged)
    return _estimate("doubly_robust", terms, np.ones_like(w), w, clip=clip, bootstrap=bootstrap, seed=seed, level=level)


def _weighted(
    reward: ArrayLike, logged_propensity: ArrayLike, target_probability: ArrayLike, clip: float | None
) -> tuple[Floats, Floats]:
    r, mu, pi = _arrays(reward=reward, logged_propensity=logged_propensity, target_probability=target_probability)
    if not ((mu > 0) & (mu <= 1)).all():
        raise ValueError("logged_propensity must be in (0, 1]: a logged action had a chance of being taken")
    if not ((pi >= 0) & (pi <= 1)).all():
        raise ValueError("target_probability must be in [0, 1]")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip!r}")
    w = pi / mu
    return r, (w if clip is None else np.minimum(w, clip))


def _arrays(**named: ArrayLike) -> list[Floats]:
    arrays = [np.asarray(value, dtype=np.float64) for value in named.values()]
    names = ", ".join(named)
    if any(a.ndim != 1 for a in arrays) or len({a.size for a in arrays}) != 1:
        raise ValueError(f"{names} must be one-dimensional arrays of the same length")
    if arrays[0].size < 2:
        raise ValueError(f"need at least 2 logged decisions, got {arrays[0].size}")
    for name, a in zip(named, arrays, strict=True):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return arrays


def _estimate(
    name: str,
    numerator: Floats,
    denominator: Floats,
    weights: Floats | None,
    *,
    clip: float | None,
    bootstrap: int,
    seed: int,
    level: float,
) -> Estimate:
    """Σ numerator / Σ denominator with its interval (plain means have a denominator of ones)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be ≥ 0 resamples, got {bootstrap!r}")
    n = numerator.size
    value = float(numerator.sum() / denominator.sum())
    if bootstrap:
        low, high = _bootstrap(numerator, denominator, bootstrap, seed, level)
    else:
        # Linearised terms: for a ratio, (num − value·den) / mean(den) (the delta method); for a mean, the terms.
        terms = (numerator - value * denominator) / denominator.mean()
        half = NormalDist().inv_cdf(0.5 + level / 2) * float(terms.std(ddof=1)) / np.sqrt(n)
        low, high = value - half, value + half
    ess = float(n) if weights is None else _kish(weights)
    return Estimate(name, value, low, high, n, ess, clip, "bootstrap" if bootstrap else "normal", level)


def _bootstrap(numerator: Floats, denominator: Floats, resamples: int, seed: int, level: float) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = numerator.size
    values = []
    for start in range(0, resamples, _BOOTSTRAP_CHUNK):
        index = rng.integers(0, n, size=(min(_BOOTSTRAP_CHUNK, resamples - start), n))
        den = denominator[index].sum(axis=1)
        values.append(np.divide(numerator[index].sum(axis=1), den, out=np.full(den.shape, np.nan), where=den != 0))
    low, high = np.nanquantile(np.concatenate(values), [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def _kish(weights: Floats) -> float:
    squares = float((weights**2).sum())
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0
