"""Decision latency: features, every model, the policy over all candidate plans and the explanation, in process.

It trains a bundle on a synthetic decision log (so it needs no data set), builds carts and shoppers like the
lifecycle keeps them, and times `decide.features.row` + `decide.policy.choose` (no-contact model, contact model
over every candidate plan in one call, lifetime value, TreeSHAP top features) one decision at a time.

With `--caution` κ > 0 the policy also computes every plan's uncertainty (`[decisions] caution`).

    .venv/bin/python bench/decision.py [--decisions 20000] [--examples 20000] [--caution 0]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from cartrecover.decide import features, policy
from cartrecover.decide.actions import for_shopper
from cartrecover.decide.learned import lifetime_value, usable_channels
from cartrecover.decision_settings import DecisionConfig
from cartrecover.domain.cart import Cart, CartStatus
from cartrecover.domain.events import LineItem
from cartrecover.learn.train import Example, train
from cartrecover.ports.decisions import DecisionRecord
from cartrecover.ports.shoppers import Shopper

START = datetime(2030, 1, 1, tzinfo=UTC)


def synthetic_cart(rng: random.Random, number: int) -> tuple[Cart, Shopper]:
    """A cart and its shopper as the lifecycle would have them at abandonment."""
    at = START + timedelta(minutes=number)
    items = tuple(
        LineItem(f"p{rng.randrange(500)}", rng.randint(1, 2), rng.randint(500, 20_000))
        for _ in range(rng.randint(1, 4))
    )
    cart = Cart(1, f"c{number}", f"s{number}", at - timedelta(minutes=40), at - timedelta(minutes=30))
    cart.status, cart.items, cart.abandoned_at = CartStatus.ABANDONED, items, at
    cart.page_views, cart.device = rng.randint(0, 12), rng.choice(["mobile", "desktop", None])
    cart.campaign, cart.checkout_started = (
        rng.choice([None, "google/cpc", "couponfollow/affiliate"]),
        rng.random() < 0.4,
    )
    shopper = Shopper(
        1, cart.shopper_id, email=f"{number}@x.example", consent={"email": True, "sms": rng.random() < 0.4}
    )
    shopper.phone = "+15550000000" if shopper.consent["sms"] else None
    if rng.random() < 0.3:
        shopper.orders, shopper.spend = rng.randint(1, 5), rng.randint(2_000, 50_000)
        shopper.first_order_at, shopper.last_order_at = (
            at - timedelta(days=200),
            at - timedelta(days=rng.randint(1, 90)),
        )
    return cart, shopper


def synthetic_log(count: int, config: DecisionConfig) -> list[Example]:
    """Logged decisions with outcomes from a known response: reminders help some, discounts others."""
    rng = random.Random(1)
    plans = config.plans()
    found = []
    for number in range(count):
        cart, shopper = synthetic_cart(rng, number)
        row = features.row(cart, shopper, features.Observed())
        holdout = rng.random() < 0.15
        plan = plans[0] if holdout else rng.choice(plans)
        base = 0.05 + 0.1 * row[4] + 0.05 * (row[13] > 0)
        lift = 0.0 if not plan.touches else 0.03 * len(plan.touches) + plan.percent_off / 100 * (row[12] == 5)
        record = DecisionRecord(
            1, cart.cart_id, cart.shopper_id, cart.abandoned_at or START, "holdout" if holdout else "treated",
            "bench", plan.name, plan.describe(), row, features.VERSION, None if holdout else 1 / len(plans),
        )  # fmt: skip
        ordered = rng.random() < base + lift
        found.append(Example(record, ordered, cart.value / 100, discounted=ordered and plan.percent_off > 0))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--caution", type=float, default=0.0, help="[decisions] caution (default 0)")
    args = parser.parse_args()
    config = DecisionConfig(caution=args.caution)
    began = time.perf_counter()
    trained = train(synthetic_log(args.examples, config), [])
    print(f"trained on {args.examples} synthetic decisions in {time.perf_counter() - began:.1f} s")
    bundle, economics, plans = trained.bundle, config.economics(30), config.plans()
    rng = random.Random(2)
    carts = [synthetic_cart(rng, n) for n in range(args.decisions)]
    gc.collect()
    gc.freeze()  # the set-up's objects (the log, the carts) are not the decision's garbage; a server does the same
    timings, cpu = [], []
    for cart, shopper in carts:
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        usable = usable_channels(shopper)
        allowed = for_shopper(plans, usable)
        clv = lifetime_value(bundle.clv, shopper, cart.abandoned_at or START)
        row = features.row(cart, shopper, features.Observed(0, clv, "Europe/Berlin"))
        policy.choose(
            bundle, row, allowed, order_value=cart.value / 100, clv=clv or 0.0, economics=economics,
            exploration=0.1, seed=cart.cart_id,
        )  # fmt: skip
        timings.append((time.perf_counter_ns() - t0) / 1000)
        cpu.append((time.thread_time_ns() - c0) / 1000)
    print(
        f"{len(timings)} decisions over {len(plans)} candidate plans, caution {args.caution} (target p99 ≤ 1,000 µs):"
    )
    for name, found in (("wall", timings), ("CPU of this thread", cpu)):
        found.sort()
        pick = lambda q, f=found: f[min(int(q * len(f)), len(f) - 1)]  # noqa: E731
        print(
            f"  {name:<19} mean {statistics.fmean(found):.0f} µs, p50 {pick(0.5):.0f} µs, p99 {pick(0.99):.0f} µs, "
            f"p99.9 {pick(0.999):.0f} µs"
        )
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
