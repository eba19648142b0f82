"""A model on trial against the running policy, judged on the profit each side really made.

While model v is on trial (`Models.trial`), a fixed split of the treated shoppers by a hash of the shopper and v
(decide.experiments.trial_arm) puts `share` of them on the candidate's side and the rest on the running policy's
(the active model, or the rules), each side exploring as it would live. Every decision records its side. Once a
decision's recovery window has closed, its reward is the profit it brought, counted as the offline check counts it
(learn.evaluate: the order's margin less the discount it took, weighted, less the channel costs).

The difference in profit per decision is estimated from the split itself, with no model and no importance weight
beyond the split's known share: for decision i on the candidate's side (A_i = 1) or the running one's (A_i = 0),

    Z_i = (r_i − b_i) · (A_i / share − (1 − A_i) / (1 − share)),    E[Z_i] = candidate − running,

where b_i is a baseline fitted on both sides pooled (a line in the cart's value when decided, known before the
split: it lowers the variance and adds no bias). Its interval is a confidence sequence (Waudby-Smith, Arbour, Sinha,
Kennedy & Ramdas 2021, the asymptotic one from Robbins' normal mixture): it holds at every number of decisions at
once, so a shop may look after every day and still be wrong at most 5 % of the time. A fixed-n 95 % interval looked
at that often would name a false winner far more often. The price is width: at `TUNED_FOR` decisions the sequence
is about 1.55 times as wide as the fixed-n interval (2 times at a tenth of it).

Verdict: "promote" when the whole interval is above 0 (the candidate makes more), "stop" when it is below,
"continue" otherwise, and "continue" too until each side has `MIN_PER_SIDE` decisions. At the horizon
(`[decisions] trial_days`: the closed decisions on trial span that many days) an undecided trial goes to the side
with the larger estimate. That choice is wrong only where the true difference is small against the interval's
width, so it costs little; and it frees the store for the newer models trained meanwhile, which wait while a trial
runs. (The anytime-valid interval is what makes stopping early safe; stopping at the horizon needs no interval.)
Decisions of one shopper are treated as independent; a shopper abandons a few carts at most, so this is close.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cartrecover.decide.experiments import CANDIDATE, RUNNING
from cartrecover.decision_settings import DecisionConfig
from cartrecover.learn.evaluate import VALUE, reward
from cartrecover.learn.train import Example

ALPHA = 0.05  # the chance, over the whole trial and however often it is looked at, that the interval misses
TUNED_FOR = 5000  # decisions at which the confidence sequence is tightest (it holds at every other number too)
MIN_PER_SIDE = 100  # decisions each side needs before any verdict

PROMOTE, STOP, CONTINUE = "promote", "stop", "continue"


@dataclass(frozen=True)
class Side:
    """One side of the trial: its decisions and the profit they made per decision."""

    decisions: int
    profit: float  # mean realised profit per decision, major units


@dataclass(frozen=True)
class Judgement:
    """The trial's comparison so far and what it says."""

    version: int
    share: float
    candidate: Side
    running: Side
    difference: float  # candidate − running, profit per decision (the mean of Z: adjusted for the carts' values)
    low: float  # the confidence sequence at this many decisions (nan before there is any)
    high: float
    verdict: str  # PROMOTE, STOP or CONTINUE
    reason: str
    days: float = 0.0  # the span of the closed decisions on trial, in days
    at_horizon: bool = False  # the verdict is the horizon's (the larger estimate), not the interval's

    def as_dict(self) -> dict[str, object]:
        """For `--json` and the registry's metrics."""
        return {
            "version": self.version,
            "share": self.share,
            "candidate": vars(self.candidate),
            "running": vars(self.running),
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "verdict": self.verdict,
            "reason": self.reason,
            "days": self.days,
            "at_horizon": self.at_horizon,
        }


def judge(found: Sequence[Example], version: int, share: float, config: DecisionConfig, max_discount: int) -> Judgement:
    """The trial of model `version` on the closed decisions in `found` that it split (see the module docstring)."""
    on_trial = [e for e in found if e.record.trial == version and e.record.arm in (CANDIDATE, RUNNING)]
    on_trial = [e for e in on_trial if e.record.group == "treated"]
    r = np.asarray([reward(e, config, max_discount) for e in on_trial], dtype=np.float64)
    candidate = np.asarray([e.record.arm == CANDIDATE for e in on_trial], dtype=bool)
    sides = [Side(int(m.sum()), float(r[m].mean()) if m.any() else math.nan) for m in (candidate, ~candidate)]
    n = len(on_trial)
    if n < 3 or not candidate.any() or candidate.all():
        low = high = difference = math.nan
    else:
        value = np.asarray([e.record.features[VALUE] for e in on_trial], dtype=np.float64)
        design = np.column_stack((np.ones(n), value))
        baseline = design @ np.linalg.lstsq(design, r, rcond=None)[0]
        z = (r - baseline) * np.where(candidate, 1 / share, -1 / (1 - share))
        difference, margin = float(z.mean()), float(z.std(ddof=1)) * width(n)
        low, high = difference - margin, difference + margin
    times = [e.record.at for e in on_trial]
    days = (max(times) - min(times)).total_seconds() / 86400 if times else 0.0
    fewest = min(s.decisions for s in sides)
    if fewest < MIN_PER_SIDE:
        verdict = CONTINUE
        reason = f"{fewest} decisions on the thinner side; at least {MIN_PER_SIDE} a side before any verdict"
        return Judgement(version, share, sides[0], sides[1], difference, low, high, verdict, reason, days)
    verdict = PROMOTE if low > 0 else STOP if high < 0 else CONTINUE
    horizon = config.trial_days
    at_horizon = verdict == CONTINUE and horizon > 0 and days >= horizon
    if at_horizon:
        verdict = PROMOTE if difference > 0 else STOP
    said = {
        PROMOTE: f"model v{version} makes more than the running policy",
        STOP: f"model v{version} makes less than the running policy",
        CONTINUE: "no difference told from noise yet",
    }[verdict]
    if at_horizon:
        said = f"at the trial's horizon ({horizon} days) with no difference told from noise, {said} by its estimate"
    reason = f"{said}: {difference:+.3f} per decision on {n} decisions (95 % at any look: {low:+.3f} to {high:+.3f})"
    return Judgement(version, share, sides[0], sides[1], difference, low, high, verdict, reason, days, at_horizon)


def width(n: int, alpha: float = ALPHA, tuned_for: int = TUNED_FOR) -> float:
    """The half-width, in standard deviations of one observation, of the asymptotic confidence sequence after n
    observations: Robbins' normal mixture with ρ² chosen to be tightest at `tuned_for` (two-sided, level 1 − α)."""
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuned_for
    return math.sqrt(2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha))
