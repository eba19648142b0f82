"""Customer lifetime value as serving reads it: BG/NBD for repeat purchases, Gamma-Gamma for their value.

Time is counted in periods (`Clv.period_days` long, a week by default): for a shopper, `x` is the number of
repeat purchases (the first purchase is not counted), `t_x` the age of the last one measured from the first
purchase, `T` the time from the first purchase to now. Standard library only: one value costs a few
microseconds, inside every decision.

The conditional expectation of BG/NBD (Fader, Hardie & Lee 2005, eq. 10) contains the Gaussian hypergeometric
function 2F1(r + x, b + x; a + b + x − 1; z). Written as it stands, its series has parameters that grow with `x`
and terms that overflow while the power in front underflows. Pfaff's transformation turns the product into
2F1(a − 1, r + x; a + b + x − 1; −u) with u = t / (α + T); that is summed in u / (1 + u) when u is small (after a
second Pfaff step) and in −1/u with the two-term connection formula when u is large, so that every series
converges at least as fast as 0.62ᵏ and none grows with `x`. Where the closed form has removable singularities
(a = 1, r − a an integer, a + b = 1 for x = 0) the value is interpolated from nearby parameters on both sides.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BgNbd", "Clv", "GammaGamma"]

_SPLIT = (1 + math.sqrt(5)) / 2  # u above it: both expansions converge like 0.618ᵏ there, the 1/u one faster beyond
_TOLERANCE = 1e-14
_MAX_TERMS = 5_000
_CANCELLATION = 1e4  # the connection formula is trusted while its parts are at most this many times its value
_NEAR = 1e-4  # closer than this to a removable singularity: interpolate
_STEP = 1e-3  # the singular quantity is moved this far by the nearer interpolation points
_MAX_STEP = 0.05


@dataclass(frozen=True, slots=True)
class BgNbd:
    """Fitted BG/NBD: purchase rates Gamma(r, α) across shoppers, drop-out after a purchase Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be a positive number, got {value!r}")

    def p_alive(self, x: float, t_x: float, T: float) -> float:
        """Probability that a shopper with `x` repeat purchases, the last at `t_x`, is still active at age `T`."""
        _check_history(x, t_x, T)
        if x == 0:
            return 1.0
        log_odds = math.log(self.a / (self.b + x - 1)) + (self.r + x) * math.log((self.alpha + T) / (self.alpha + t_x))
        return _logistic(-log_odds)

    def expected_purchases(self, t: float, x: float, t_x: float, T: float) -> float:
        """Expected number of repeat purchases in the next `t` periods of a shopper with history (x, t_x, T)."""
        _check_history(x, t_x, T)
        if t < 0:
            raise ValueError(f"horizon t must be ≥ 0, got {t!r}")
        if t == 0:
            return 0.0
        return _growth(self, x, T, t) * self.p_alive(x, t_x, T)

    def expected_unconditional(self, t: float) -> float:
        """Expected number of purchases in the first `t` periods of a shopper picked at random (E[X(t)])."""
        if t < 0:
            raise ValueError(f"horizon t must be ≥ 0, got {t!r}")
        if t == 0:
            return 0.0
        return _growth(self, 0, 0.0, t)


@dataclass(frozen=True, slots=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend model: a shopper's mean transaction value has a Gamma(q, γ)-mixed scale (v = γ)."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "v"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Gamma-Gamma parameter {name} must be a positive number, got {value!r}")
        if self.q <= 1:
            raise ValueError(f"Gamma-Gamma q must be > 1 for the mean spend to be finite, got {self.q!r}")

    def expected_spend(self, x: float, mean_spend: float) -> float:
        """Expected value of a shopper's future transaction, given `x` repeat purchases of mean value `mean_spend`.

        With x = 0 this is the population mean, p·v / (q − 1); `mean_spend` is then ignored.
        """
        if x < 0 or mean_spend < 0:
            raise ValueError(f"x and mean_spend must be ≥ 0, got {x!r} and {mean_spend!r}")
        return self.p * (self.v + x * mean_spend) / (self.p * x + self.q - 1)


@dataclass(frozen=True, slots=True)
class Clv:
    """Expected spend of a shopper over the next `horizon_periods` periods: purchases × value of a purchase.

    Not discounted: a year's value is what the year brings, in the unit of `mean_spend` (e.g. minor units). It is
    an expectation used to weigh actions, never an amount charged, so it is a float.
    """

    purchases: BgNbd
    spend: GammaGamma
    period_days: float = 7.0
    horizon_periods: float = 52.0

    def __post_init__(self) -> None:
        if not (self.period_days > 0 and self.horizon_periods > 0):
            raise ValueError(
                f"period_days and horizon_periods must be > 0, got {self.period_days!r}, {self.horizon_periods!r}"
            )

    def value(self, x: float, t_x: float, T: float, mean_spend: float) -> float:
        """Expected (undiscounted) spend over the horizon of a shopper with history (x, t_x, T) in periods."""
        purchases = self.purchases.expected_purchases(self.horizon_periods, x, t_x, T)
        return purchases * self.spend.expected_spend(x, mean_spend)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready values, for the model registry."""
        return {
            "kind": "bgnbd-gamma-gamma",
            "bgnbd": asdict(self.purchases),
            "gamma_gamma": asdict(self.spend),
            "period_days": self.period_days,
            "horizon_periods": self.horizon_periods,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Clv:
        """The model `to_dict` wrote; ValueError when a field is missing or out of range."""
        if data.get("kind") != "bgnbd-gamma-gamma":
            raise ValueError(f"not a BG/NBD + Gamma-Gamma model: kind={data.get('kind')!r}")
        try:
            purchases = BgNbd(**{k: float(data["bgnbd"][k]) for k in ("r", "alpha", "a", "b")})
            spend = GammaGamma(**{k: float(data["gamma_gamma"][k]) for k in ("p", "q", "v")})
            return cls(purchases, spend, float(data["period_days"]), float(data["horizon_periods"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"incomplete CLV model: {error!r}") from error


def _check_history(x: float, t_x: float, T: float) -> None:
    if not (x >= 0 and 0 <= t_x <= T):
        raise ValueError(f"need x ≥ 0 and 0 ≤ t_x ≤ T, got x={x!r}, t_x={t_x!r}, T={T!r}")


def _logistic(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    e = math.exp(value)
    return e / (1.0 + e)


@functools.lru_cache(maxsize=16_384)  # shoppers share (x, T) when ages are whole days: a hit costs a fraction of a µs
def _growth(model: BgNbd, x: float, T: float, t: float) -> float:
    """(a+b+x−1)/(a−1) · [1 − 2F1(a−1, r+x; a+b+x−1; −t/(α+T))]: eq. 10's numerator, interpolated near a singularity."""
    r, a, b = model.r, model.a, model.b
    u = t / (model.alpha + T)
    step = _interpolation_step(r, a, b, x, u)
    if step == 0:
        return _growth_exact(r, a, b, x, u)
    # Cubic Lagrange through d = ±h, ±2h on the path (r(1−d), a(1+d), b(1+d)), read at d = 0: every quantity whose
    # integer value makes a singularity (a − 1, a + b − 1, r − a) moves along it, and the parameters stay positive.
    near, far = (
        (_growth_exact(r * (1 - d), a * (1 + d), b * (1 + d), x, u) for d in (-step, step)),
        (_growth_exact(r * (1 - d), a * (1 + d), b * (1 + d), x, u) for d in (-2 * step, 2 * step)),
    )
    return (4 * sum(near) - sum(far)) / 6


def _interpolation_step(r: float, a: float, b: float, x: float, u: float) -> float:
    """How far to step along the interpolation path to move off a nearby removable singularity (0: none near)."""
    rates = []
    if abs(a - 1) < _NEAR:
        rates.append(a)
    if x == 0 and abs(a + b - 1) < _NEAR:
        rates.append(a + b)
    if u > _SPLIT and abs(r - a - round(r - a)) < _NEAR:
        rates.append(r + a)
    return min(_MAX_STEP, max(_STEP / rate for rate in rates)) if rates else 0.0


def _growth_exact(r: float, a: float, b: float, x: float, u: float) -> float:
    c = a + b + x - 1
    value = math.nan
    if u > _SPLIT:
        value, size = _hyp2f1_large_negative(a - 1, r + x, c, u)
        if size <= _CANCELLATION * abs(value):
            return c / (a - 1) * (1 - value)
    # 2F1(a−1, r+x; c; −u) = (1+u)^(1−a) · 2F1(a−1, c−r−x; c; z), z = u/(1+u) (Pfaff): with u ≤ 1.618 it converges
    # like 0.618ᵏ; beyond, it is the fallback when the connection formula cancels (larger x: there c makes it fast).
    log_power = -(a - 1) * math.log1p(u)
    rest = _series_minus_one(a - 1, a + b - 1 - r, c, u / (1 + u))
    if rest is None:  # not within the budget (only beyond the split): the connection formula, cancellation and all
        return c / (a - 1) * (1 - value)
    return c / (a - 1) * (-math.expm1(log_power) - math.exp(log_power) * rest)


def _hyp2f1_large_negative(A: float, B: float, C: float, u: float) -> tuple[float, float]:
    """2F1(A, B; C; −u) for u > 1 by the connection formula in −1/u (Abramowitz & Stegun 15.3.7), and the size of
    its two parts, whose ratio to the value measures the digits lost to cancellation."""
    first = _gamma_ratio((C, B - A), (B, C - A)) * u ** (-A)
    if first:
        first *= 1 + (_series_minus_one(A, 1 - C + A, 1 - B + A, -1 / u) or math.inf)
    log_second, sign_second = _log_gamma_ratio((C, A - B), (A, C - B))
    if sign_second == 0:
        return first, abs(first)
    second = sign_second * math.exp(log_second - B * math.log(u))
    second *= 1 + (_series_minus_one(B, 1 - C + B, 1 - A + B, -1 / u) or math.inf)
    return first + second, abs(first) + abs(second)


def _series_minus_one(A: float, B: float, C: float, z: float) -> float | None:
    """2F1(A, B; C; z) − 1 by its power series, |z| < 1, summed until the tail is below the tolerance (None: not
    within the term budget)."""
    total = 0.0
    term = 1.0
    safe = max(-A, -B, -C, 0.0) + 1  # past this index no factor changes sign, so the ratio tends to z calmly
    k = 0.0
    while k < _MAX_TERMS:
        ratio = (A + k) * (B + k) / ((C + k) * (k + 1)) * z
        term *= ratio
        total += term
        k += 1
        # Cheap test first; then bound the tail by a geometric series of the larger of the last ratio and z.
        if abs(term) <= _TOLERANCE * abs(total) and k > safe:
            rho = max(abs(ratio), abs(z))
            if abs(term) * rho <= _TOLERANCE * (1 - rho) * abs(total):
                return total
    return None


def _gamma_ratio(numerator: tuple[float, ...], denominator: tuple[float, ...]) -> float:
    log_value, sign = _log_gamma_ratio(numerator, denominator)
    return sign * math.exp(log_value) if sign else 0.0


def _log_gamma_ratio(numerator: tuple[float, ...], denominator: tuple[float, ...]) -> tuple[float, int]:
    """log |∏Γ(numerator) / ∏Γ(denominator)| and its sign; sign 0 when a denominator sits on a pole of Γ."""
    log_value = 0.0
    sign = 1
    for value, direction in [(v, 1) for v in numerator] + [(v, -1) for v in denominator]:
        if value <= 0 and value == math.floor(value):
            if direction < 0:
                return 0.0, 0
            raise ArithmeticError(f"Γ has a pole at {value}")
        log_value += direction * math.lgamma(value)
        if value < 0 and math.ceil(-value) % 2 == 1:
            sign = -sign
    return log_value, sign
