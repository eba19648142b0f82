"""Training time against the size of the decision log: `learn.train.train` and the offline check, in process.

The log is synthetic: feature rows drawn column by column in the ranges the engine writes (cart value, lines,
consent, session, device, traffic, history, local time), 15 % holdout, the rest half exploring uniformly over
the candidate plans and half on one fixed journey, with outcomes from a known response (deal traffic answers
discounts, the rest reminders). What is timed is what `cartrecover train` does after reading the log: the
no-contact LightGBM with its calibration, the contact model, and the offline check (a second fit on the older
80 % and the doubly robust evaluation of the newest 20 %). Reading the rows from the state store is not in it.

    .venv/bin/python bench/train_scale.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from cartrecover.decide import features
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.journey import Channel
from cartrecover.learn.evaluate import check
from cartrecover.learn.train import Example, train
from cartrecover.ports.decisions import DecisionRecord

START = datetime(2030, 1, 1, tzinfo=UTC)


def synthetic(count: int, seed: int = 1) -> list[Example]:
    """`count` logged decisions, oldest first (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    config = DecisionConfig(channels=(Channel.EMAIL, Channel.SMS))
    plans = list(config.plans())
    journey = next(p for p in plans if p.name == "email 1h+24h+72h 10% off")
    x = np.full((count, len(features.NAMES)), np.nan)
    column = {name: i for i, name in enumerate(features.NAMES)}
    value = np.exp(rng.normal(np.log(60), 0.7, count))
    x[:, column["cart_value"]] = value
    x[:, column["lines"]] = rng.integers(1, 5, count)
    x[:, column["quantity"]] = x[:, column["lines"]] + rng.integers(0, 2, count)
    x[:, column["max_price"]] = value / x[:, column["lines"]]
    x[:, column["checkout_started"]] = rng.random(count) < 0.3
    x[:, column["email_ok"]] = rng.random(count) < 0.6
    x[:, column["sms_ok"]] = rng.random(count) < 0.2
    x[:, column["push_ok"]] = 0
    x[:, column["page_views"]] = rng.integers(1, 12, count)
    x[:, column["dwell_minutes"]] = rng.exponential(8, count)
    x[:, column["coupon_attempts"]] = rng.random(count) < 0.1
    x[:, column["device"]] = rng.choice([1.0, 3.0], count, p=[0.6, 0.4])
    traffic = rng.choice([0.0, 1, 2, 3, 4, 5], count, p=[0.3, 0.25, 0.15, 0.1, 0.12, 0.08])
    x[:, column["traffic"]] = traffic
    orders = rng.poisson(0.4, count)
    x[:, column["prior_orders"]] = orders
    x[:, column["days_since_order"]] = np.where(orders > 0, rng.exponential(60, count), np.nan)
    x[:, column["spend"]] = orders * value
    x[:, column["clicks"]] = rng.poisson(0.2, count)
    x[:, column["messages_30d"]] = rng.poisson(0.5, count)
    x[:, column["local_hour"]] = rng.integers(0, 24, count)
    x[:, column["weekday"]] = rng.integers(0, 7, count)
    holdout = rng.random(count) < 0.15
    explore = rng.random(count) < 0.5
    pick = rng.integers(0, len(plans), count)
    draws = rng.random(count)
    found = []
    deals = traffic == 5
    base = 0.08 + 0.1 * x[:, column["checkout_started"]] + 0.05 * (orders > 0)
    for i in range(count):
        plan = plans[0] if holdout[i] else plans[pick[i]] if explore[i] else journey
        reached = bool(x[i, column["email_ok"]] or x[i, column["sms_ok"]])
        touches, percent = (len(plan.touches), plan.percent_off) if reached else (0, 0)
        p = (0.01 * touches + 0.02 * percent) if deals[i] else base[i] + 0.02 * touches + 0.002 * percent
        propensity = None if holdout[i] else (0.5 / len(plans) + (0.5 if plan is journey else 0.0))
        record = DecisionRecord(
            1, f"c{i}", f"s{i}", START + timedelta(seconds=30 * i), "holdout" if holdout[i] else "treated",
            "explore" if explore[i] else "rules-v1", plan.name, plan.describe(), x[i].tolist(), features.VERSION,
            propensity, explored=bool(explore[i] and not holdout[i]),
        )  # fmt: skip
        ordered = bool(draws[i] < p)
        found.append(Example(record, ordered, float(value[i]), discounted=ordered and percent > 0))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    config = DecisionConfig(channels=(Channel.EMAIL, Channel.SMS))
    print(
        f"{'decisions':>10}  {'train s':>8}  {'offline check s':>15}  {'peak RSS GiB':>12}  contact log loss (without plan)"
    )
    for size in args.sizes:
        found = synthetic(size)
        began = time.perf_counter()
        trained = train(found, [])
        trained_at = time.perf_counter()
        checked = check(found, [], config, max_discount=30)
        done = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        m = trained.metrics
        print(
            f"{size:>10,}  {trained_at - began:>8.1f}  {done - trained_at:>15.1f}  {rss:>12.2f}  "
            f"{m['contact_log_loss']:.4f} ({m['contact_log_loss_without_plan']:.4f}); check passed: {checked.passed}",
            flush=True,
        )


if __name__ == "__main__":
    main()
