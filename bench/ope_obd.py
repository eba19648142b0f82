"""Off-policy evaluation on the Open Bandit Dataset (small version): each policy's CTR estimated from the other's logs.

    .venv/bin/python bench/ope_obd.py [--bootstrap 300] [--seed 0]

Reads ../shared/data/open_bandit_dataset (never copied into the repository): for each campaign (all, men, women)
10,000 impressions logged by the uniformly random policy and 10,000 by Bernoulli Thompson sampling (BTS), each a
(item, position, click, propensity) row. The honest check: estimate the BTS policy's CTR from the random logs with
`cartrecover.learn.ope` and compare it with the CTR BTS measured on its own logs (with its Wilson interval), and
the reverse, the random policy's CTR from the BTS logs.

The target probability of a logged (item, position) under BTS. BTS is context-free within a campaign but its
posterior was updated all week: the logged propensity of one (item, position) moves from minutes to minutes. Its
average over the rows that show the item overstates the policy's average probability (an item is shown more when
its probability is high), which this prints: those averages sum to far more than 1 over the items of a position.
The week's average action distribution of BTS is estimated instead by how often BTS showed each item at each
position: n(item, position) / n(position) in the BTS logs, an unbiased estimate that sums to 1. It is itself
estimated, so beside the intervals of `cartrecover.learn.ope` (which treat target probabilities as known) the
forward direction also gets a joint bootstrap that resamples both logs. The reverse direction needs no estimate:
the random policy's probability is 1 / number of items, and BTS logged its own propensity.

DR uses a per-(item, position) CTR, shrunk toward the position's CTR (20 pseudo-impressions), cross-fitted: each
half of the logs is scored by the model fitted on the other half.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cartrecover.learn.ope import Estimate, doubly_robust, ips, snips  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_bandit_dataset"
CAMPAIGNS = ("all", "men", "women")
POSITIONS = 3
PSEUDO_IMPRESSIONS = 20.0
Z = 1.959963984540054


@dataclass(frozen=True)
class Logs:
    """One policy's logs for one campaign; positions are 0, 1, 2."""

    item: np.ndarray
    position: np.ndarray
    click: np.ndarray
    propensity: np.ndarray
    items: int

    def take(self, index: np.ndarray) -> Logs:
        return Logs(self.item[index], self.position[index], self.click[index], self.propensity[index], self.items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", type=int, default=300, help="joint bootstrap resamples (forward direction)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("Open Bandit Dataset, small version: 10,000 impressions per policy and campaign. CTR × 1000 throughout.")
    for campaign in CAMPAIGNS:
        random, bts = load("random", campaign), load("bts", campaign)
        print(
            f"\n== {campaign}: {random.items} items; on-policy CTR (Wilson 95 %):"
            f" random {show_truth(random)}, BTS {show_truth(bts)}"
        )
        naive = mean_logged_propensity(bts)
        print(
            f"   mean logged BTS propensity per (item, position), summed over items per position:"
            f" {', '.join(f'{s:.2f}' for s in np.nansum(naive, axis=0))} (a distribution would give 1)"
        )
        print(
            "   BTS's CTR estimated from the random logs (target: BTS's action frequencies in its logs; the last row's"
        )
        print("   target: the mean logged propensity per (item, position), normalised to sum to 1 per position)")
        forward = estimates_forward(random, bts, rng)
        boot = joint_bootstrap(random, bts, rng, args.bootstrap)
        normalised = np.nan_to_num(naive) / np.nansum(naive, axis=0, keepdims=True)
        pi = normalised[random.item, random.position]
        as_suggested = ips(random.click, random.propensity, pi)
        forward.append(Estimate(**{**as_suggested.__dict__, "estimator": "ips, mean-prop."}))
        report(forward, bts.click.mean(), wilson(bts.click), boot)
        print("   random's CTR estimated from the BTS logs (target 1/items; BTS's logged propensities)")
        report(estimates_reverse(random, bts, rng), random.click.mean(), wilson(random.click), None)
    print(
        "\nobp (Open Bandit Pipeline) is not compared: its package imports torch, which is not installed here."
        "\nrel. error = (estimate − on-policy CTR) / on-policy CTR; 'covers' = the estimate's 95 % interval contains"
        " the on-policy CTR; 'overlap' = it meets the on-policy CTR's own Wilson interval."
    )


def load(policy: str, campaign: str) -> Logs:
    item, position, click, propensity = [], [], [], []
    with (DATA / policy / campaign / f"{campaign}.csv").open() as handle:
        for row in csv.DictReader(handle):
            item.append(int(row["item_id"]))
            position.append(int(row["position"]) - 1)
            click.append(float(row["click"]))
            propensity.append(float(row["propensity_score"]))
    items = sum(1 for _ in (DATA / policy / campaign / "item_context.csv").open()) - 1
    return Logs(np.array(item), np.array(position), np.array(click), np.array(propensity), items)


def action_frequencies(logs: Logs) -> np.ndarray:
    """n(item, position) / n(position): the logging policy's average action distribution per position."""
    counts = np.zeros((logs.items, POSITIONS))
    np.add.at(counts, (logs.item, logs.position), 1.0)
    return counts / counts.sum(axis=0, keepdims=True)


def mean_logged_propensity(logs: Logs) -> np.ndarray:
    total, count = np.zeros((logs.items, POSITIONS)), np.zeros((logs.items, POSITIONS))
    np.add.at(total, (logs.item, logs.position), logs.propensity)
    np.add.at(count, (logs.item, logs.position), 1.0)
    with np.errstate(invalid="ignore"):
        return total / count


def ctr_model(logs: Logs) -> np.ndarray:
    """CTR per (item, position), shrunk toward the position's CTR by PSEUDO_IMPRESSIONS."""
    clicks, shown = np.zeros((logs.items, POSITIONS)), np.zeros((logs.items, POSITIONS))
    np.add.at(clicks, (logs.item, logs.position), logs.click)
    np.add.at(shown, (logs.item, logs.position), 1.0)
    position_ctr = clicks.sum(axis=0) / np.maximum(shown.sum(axis=0), 1)
    return (clicks + PSEUDO_IMPRESSIONS * position_ctr) / (shown + PSEUDO_IMPRESSIONS)


def cross_fitted(logs: Logs, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the model's CTR of the logged (item, position) and its expectation under `target` (items × positions),
    each from the model fitted on the other half of the rows."""
    half = rng.permutation(len(logs.click)) % 2 == 0
    predicted, expected = np.zeros(len(logs.click)), np.zeros(len(logs.click))
    for scored in (half, ~half):
        model = ctr_model(logs.take(np.flatnonzero(~scored)))
        predicted[scored] = model[logs.item[scored], logs.position[scored]]
        expected[scored] = (target * model).sum(axis=0)[logs.position[scored]]
    return predicted, expected


def forward_arrays(random: Logs, bts: Logs, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    target = action_frequencies(bts)
    pi = target[random.item, random.position]
    predicted, expected = cross_fitted(random, target, rng)
    return random.click, random.propensity, pi, predicted, expected


def estimates_forward(random: Logs, bts: Logs, rng: np.random.Generator) -> list[Estimate]:
    r, mu, pi, predicted, expected = forward_arrays(random, bts, rng)
    return [ips(r, mu, pi), snips(r, mu, pi), doubly_robust(r, mu, pi, predicted, expected)]


def estimates_reverse(random: Logs, bts: Logs, rng: np.random.Generator) -> list[Estimate]:
    target = np.full((bts.items, POSITIONS), 1.0 / bts.items)
    pi = target[bts.item, bts.position]
    predicted, expected = cross_fitted(bts, target, rng)
    r, mu = bts.click, bts.propensity
    clip = 100.0
    return [
        ips(r, mu, pi),
        snips(r, mu, pi),
        doubly_robust(r, mu, pi, predicted, expected),
        ips(r, mu, pi, clip=clip),
        doubly_robust(r, mu, pi, predicted, expected, clip=clip),
    ]


def joint_bootstrap(random: Logs, bts: Logs, rng: np.random.Generator, resamples: int) -> list[tuple[float, float]]:
    """Percentile 95 % intervals of IPS, SNIPS, DR when both logs are resampled (the target is re-estimated)."""
    values = []
    for _ in range(resamples):
        r_logs = random.take(rng.integers(0, len(random.click), len(random.click)))
        b_logs = bts.take(rng.integers(0, len(bts.click), len(bts.click)))
        values.append([e.value for e in estimates_forward(r_logs, b_logs, rng)])
    low, high = np.quantile(np.array(values), [0.025, 0.975], axis=0)
    return list(zip(low.tolist(), high.tolist(), strict=True))


def wilson(click: np.ndarray) -> tuple[float, float]:
    n, p = len(click), float(click.mean())
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def show_truth(logs: Logs) -> str:
    low, high = wilson(logs.click)
    return f"{logs.click.mean() * 1000:.2f} [{low * 1000:.2f}, {high * 1000:.2f}]"


def report(estimates: list[Estimate], truth: float, truth_interval: tuple[float, float], boot: list | None) -> None:
    print(
        f"     {'estimator':<22} {'CTR×1000':>8} {'95 % interval':>17} {'rel. error':>10} {'covers':>6}"
        f" {'overlap':>7} {'ESS':>7}" + ("   joint bootstrap (covers)" if boot else "")
    )
    for i, e in enumerate(estimates):
        name = e.estimator + (f" clip {e.clip:g}" if e.clip else "")
        covers = "yes" if e.low <= truth <= e.high else "no"
        overlap = "yes" if e.low <= truth_interval[1] and truth_interval[0] <= e.high else "no"
        line = (
            f"     {name:<22} {e.value * 1000:>8.2f} [{e.low * 1000:>6.2f}, {e.high * 1000:>6.2f}]"
            f" {(e.value - truth) / truth:>+10.1%} {covers:>6} {overlap:>7} {e.effective_sample_size:>7.0f}"
        )
        if boot and i < len(boot):
            low, high = boot[i]
            line += f"   [{low * 1000:.2f}, {high * 1000:.2f}] ({'yes' if low <= truth <= high else 'no'})"
        print(line)


if __name__ == "__main__":
    main()
