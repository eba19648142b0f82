"""The two intervals the report gives, from well-kept libraries: statsmodels and SciPy.

Counts and money come in as integers; the statistics are computed in float (that is what the libraries do) and
only the intervals come back as float. Point estimates of money are computed exactly by the caller.
The libraries are imported when an interval is computed, so that importing the report costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95 % confidence interval (None when the data give none, e.g. no variance)."""

    estimate: float
    low: float | None
    high: float | None


def difference_of_proportions(successes: int, trials: int, base_successes: int, base_trials: int) -> Interval:
    """successes/trials − base_successes/base_trials with Newcombe's hybrid score interval (method 10)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(
        successes, trials, base_successes, base_trials, method="newcomb", compare="diff", alpha=1 - CONFIDENCE
    )
    return Interval(successes / trials - base_successes / base_trials, _finite(low), _finite(high))


def difference_of_means(values: Sequence[int], base: Sequence[int]) -> Interval:
    """mean(values) − mean(base) with Welch's t interval (unequal variances), as `scipy.stats.ttest_ind` gives it."""
    from scipy import stats

    result = stats.ttest_ind(values, base, equal_var=False)
    ci = result.confidence_interval(CONFIDENCE)
    estimate = math.fsum(values) / len(values) - math.fsum(base) / len(base)
    return Interval(estimate, _finite(ci.low), _finite(ci.high))


def probability_of_best(counts: Sequence[tuple[int, int]], draws: int = 20_000, seed: int = 0) -> list[float]:
    """For each (successes, trials), the probability its rate is the highest, under Beta(1 + s, 1 + t − s) posteriors.

    Monte Carlo: the share of `draws` joint draws from the posteriors in which each is the highest (ties cannot
    happen in continuous draws). Seeded, so that the same counts always give the same figures.
    """
    import numpy as np

    successes = np.array([s for s, _ in counts], dtype=float)
    failures = np.array([t - s for s, t in counts], dtype=float)
    samples = np.random.default_rng(seed).beta(1 + successes, 1 + failures, size=(draws, len(counts)))
    wins = np.bincount(samples.argmax(axis=1), minlength=len(counts))
    return [float(w) / draws for w in wins]


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]  # numpy scalars
    return number if math.isfinite(number) else None
