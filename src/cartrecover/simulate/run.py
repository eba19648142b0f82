"""`cartrecover simulate`: simulated shoppers against a real engine, then the true lift next to the measured one.

The driver starts `cartrecover serve --clock manual`, creates a store (or continues one: the learning loop runs
weeks, trains, and runs more weeks on the same data), and moves the clock in steps. At each step it sends the
visits of that step as one Segment batch, reads the messages the engine delivered since the last step from the
console channel's file, lets each shopper react (shoppers.Shopper.receive), follows the restore links they click
(`GET /r/{token}`, the coupon read from the redirect) and sends their orders. It talks to the engine only through
HTTP and the messages file.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
from tqdm import tqdm

from cartrecover.simulate.compare import Outcome, mismatches, print_summary, tally
from cartrecover.simulate.server import all_carts, cli_json, iso, post, server
from cartrecover.simulate.shoppers import Shopper, StoreProfile, Touch
from cartrecover.simulate.traffic import Customer, Visit, lognormal_prices, make_visit
from cartrecover.simulate.truth import CartTruth

STEP = timedelta(minutes=10)
DRAIN = timedelta(days=7)  # after the last arrival: every journey step, click and own return has happened
_LINK = re.compile(r"/r/([A-Za-z0-9._~\-]+)")
_PERCENT = re.compile(r"(\d+)\s?% off")
START = datetime(2030, 1, 1, tzinfo=UTC)  # any fixed day: the same seed gives the same run
DAY = timedelta(days=1)

Inspect = Callable[[httpx.Client, dict[str, str]], dict[str, Any]]


@dataclass
class _Action:
    at: datetime
    number: int
    kind: str  # "click", "order"
    token: str = ""


@dataclass
class Simulation:
    """The state of one run: visits, shoppers with their hidden responses, and what is still to happen."""

    profile: StoreProfile
    seed: int
    visits: dict[int, Visit] = field(default_factory=dict)
    shoppers: dict[int, Shopper] = field(default_factory=dict)
    by_address: dict[str, int] = field(default_factory=dict)
    pending: list[_Action] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)  # due calls, sent at the next step


def run_simulation(
    days: int = 14,
    seed: int = 1,
    profile: StoreProfile | None = None,
    data_dir: Path | None = None,
    *,
    start: datetime = START,
    show: bool = True,
    progress: bool = True,
    inspect: Inspect | None = None,
    keys: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Simulate `days` of the store from `start` against an engine on `data_dir`; return the summary (and print it).

    `show` prints the summary, `progress` a progress bar on stderr. `inspect(http, admin_headers)` runs against
    the engine before it stops; what it returns joins the summary. To continue an earlier run on the same data
    dir, pass its `keys` (the summary's: the store is not created again) and a `start` at or after its `end`;
    visitors are numbered by their day since START, so they stay distinct across runs. `env` adds settings for
    the engine's process (`CARTRECOVER_*`, e.g. a decision policy).
    """
    profile = profile or StoreProfile()
    if start < START:
        raise ValueError(f"simulations start on or after {START.isoformat()} (visitors are numbered from it)")
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-sim-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    keys = dict(keys) if keys is not None else _add_store(profile, data_dir)
    sim = Simulation(profile, seed)
    end = start + timedelta(days=days) + DRAIN
    engine_env = {"CARTRECOVER_HOLDOUT_SHARE": str(profile.holdout_share), **(env or {})}
    with server(data_dir, engine_env) as base, httpx.Client(base_url=base, timeout=120) as http:
        admin = {"Authorization": f"Bearer {keys['admin_key']}"}
        inbox = data_dir / "messages.jsonl"
        _drive(sim, http, keys["write_key"], admin, inbox, start=start, days=days, progress=progress)
        summary = _summarise(sim, http, admin, start, end)
        if inspect is not None:
            summary |= inspect(http, admin)
    summary |= {"wall_seconds": time.perf_counter() - began, "days": days, "seed": seed, "data_dir": str(data_dir)}
    summary |= {"start": start, "end": end, "currency": profile.currency, "admin_key": keys["admin_key"]}
    summary |= {"keys": keys, "margin": profile.margin, "channel_costs": dict(profile.channel_costs)}
    if show:
        print_summary(summary)
        odd = summary["mismatches"]
        print(f"\ncarts whose status is not the one their traffic implies: {len(odd)} {odd[:5] if odd else ''}")
        print(f"\n{days} simulated days (seed {seed}) in {summary['wall_seconds']:.1f} s wall time; data in {data_dir}")
    return summary


def _add_store(profile: StoreProfile, data_dir: Path) -> dict[str, str]:
    """`cartrecover stores add` for the profile's store; its write and admin keys."""
    restore = "https://sim-shop.example/cart/{cart_id}"
    return cli_json(
        *("stores", "add", profile.name, "--json", "--data-dir", str(data_dir), "--timezone", profile.timezone),
        *("--currency", profile.currency, "--restore-url", restore, "--coupon-style", "query"),
    )


def _summarise(
    sim: Simulation, http: httpx.Client, admin: dict[str, str], start: datetime, end: datetime
) -> dict[str, Any]:
    """The truth beside the report, the carts whose status is not their traffic's, and every abandoned cart's shopper.

    `shoppers` lists a truth.CartTruth per abandoned cart, to price any plan for its shopper after the run.
    """
    carts = {c["id"]: c for c in all_carts(http, admin)}
    window = {"since": iso(start), "until": iso(end)}
    response = http.get("/api/v1/reports/recovery", params=window, headers=admin)
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    outcomes = {o.cart_id: o for o in sim.outcomes.values()}
    profile = sim.profile
    summary = tally(outcomes.values(), carts, report, margin=profile.margin, channel_costs=profile.channel_costs)
    filled = [(v.cart_id, v.left_at is not None) for v in sim.visits.values() if v.cart_id]
    summary["mismatches"] = mismatches(filled, outcomes, carts)
    summary["report"] = report
    summary["shoppers"] = [_truth(sim.outcomes[n].cart_id, shopper, carts) for n, shopper in sim.shoppers.items()]
    return summary


def _truth(cart_id: str, shopper: Shopper, carts: Mapping[str, Mapping[str, Any]]) -> CartTruth:
    cart = carts.get(cart_id, {})
    abandoned = cart.get("abandoned_at")
    at = datetime.fromisoformat(abandoned.replace("Z", "+00:00")) if isinstance(abandoned, str) else None
    return CartTruth(cart_id, str(cart.get("group") or "unknown"), shopper, at)


def _drive(
    sim: Simulation,
    http: httpx.Client,
    write_key: str,
    admin: dict[str, str],
    inbox: Path,
    *,
    start: datetime,
    days: int,
    progress: bool,
) -> None:
    arrivals = _arrivals(sim, start, days)
    end = start + timedelta(days=days) + DRAIN
    post(http, "/api/v1/clock", {"now": iso(start)}, admin)
    offset = inbox.stat().st_size if inbox.exists() else 0  # an earlier run's messages are not this run's
    now = start
    steps = int((end - start) / STEP)
    desc = f"{days} days + {DRAIN.days} to settle"
    for _ in tqdm(range(steps), unit="step", desc=desc, mininterval=0.5, disable=not progress):
        now += STEP
        post(http, "/api/v1/clock", {"now": iso(now)}, admin)
        offset = _read_inbox(sim, inbox, offset, now)
        while arrivals and arrivals[0][0] <= now:
            _arrive(sim, arrivals.pop(0)[1])
        _act(sim, http, now)
        if sim.calls:
            batch = sorted(sim.calls, key=lambda c: str(c["timestamp"]))
            post(http, "/v1/batch", {"batch": batch, "sentAt": iso(now), "writeKey": write_key}, {})
            sim.calls.clear()


def _arrivals(sim: Simulation, start: datetime, days: int) -> list[tuple[datetime, Visit]]:
    """Every visit of the run, by arrival time; arrivals follow the hourly weights in each shopper's local time.

    Each day draws from its own stream, numbered by days since START (so a continued run goes on as one long run
    would). Returning customers are signed-in visitors who bought at once on an earlier day of this run: those
    orders are in the traffic whatever the engine does, so every policy sees the same visits.
    """
    profile = sim.profile
    prices = lognormal_prices(
        random.Random(f"{sim.seed}/catalogue"), profile.catalogue_size, profile.price_median, profile.price_sigma
    )
    visits = []
    customers: list[Customer] = []
    first = (start - START) // DAY
    for day in range(first, first + days):
        rng = random.Random(f"{sim.seed}/day/{day}")
        today = []
        for index in range(profile.shoppers_per_day):
            number = day * 100_000 + index
            hour = rng.choices(range(24), profile.hourly_weights)[0]
            local = _local_time(rng, start + (day - first) * DAY, hour, profile, rng.random())
            today.append((local, make_visit(profile, rng, number, local, prices, customers=customers)))
        visits += today
        customers += [Customer(v.user_id, v.email, v.phone) for _, v in today if v.user_id and v.left_at is None]
    visits.sort(key=lambda pair: pair[0])
    return visits


def _local_time(rng: random.Random, day: datetime, hour: int, profile: StoreProfile, pick: float) -> datetime:
    """A moment in `hour` of the shopper's local day, as UTC, within the simulated day starting at `day`."""
    zones, shares = zip(*profile.timezones.items(), strict=True)
    zone = ZoneInfo(rng.choices(zones, shares)[0])
    offset = day.astimezone(zone).utcoffset() or timedelta()
    seconds = (hour * 3600 + int(pick * 3600) - int(offset.total_seconds())) % 86_400
    return day + timedelta(seconds=seconds)


def _arrive(sim: Simulation, visit: Visit) -> None:
    sim.calls += visit.calls
    visit.calls = []
    sim.visits[visit.number] = visit
    if visit.left_at is None:
        return
    wait = timedelta(minutes=15 if visit.quick_abandon else 30)
    signals, channels = visit.signals.names(), visit.channels
    shopper = Shopper.draw(
        visit.number,
        sim.seed,
        visit.value,
        visit.left_at + wait,
        sim.profile.response,
        signals=signals,
        channels=channels,
    )
    sim.shoppers[visit.number] = shopper
    sim.outcomes[visit.number] = Outcome(visit.cart_id or "", visit.value, shopper.counterfactual_orders)
    for address in (visit.email, visit.phone):
        if address:
            sim.by_address[address] = visit.number
    if shopper.order_at is not None:
        sim.pending.append(_Action(shopper.order_at, visit.number, "order"))


def _read_inbox(sim: Simulation, inbox: Path, offset: int, now: datetime) -> int:
    """Messages appended since `offset`: each one a touch for its shopper, who may plan a click and an order."""
    if not inbox.exists():
        return offset
    with inbox.open() as file:
        file.seek(offset)
        lines = file.readlines()
        offset = file.tell()
    for message in map(json.loads, lines):
        number = sim.by_address.get(message["to"])
        if number is None:
            continue
        percent = _PERCENT.search(message["text"])
        touch = Touch(now, message["channel"], int(percent[1]) if percent else 0)
        outcome = sim.outcomes[number]
        outcome.contacted += 1
        outcome.messages[touch.channel] = outcome.messages.get(touch.channel, 0) + 1
        reaction = sim.shoppers[number].receive(touch)
        link = _LINK.search(message["text"])
        if reaction.click_at is not None and link:
            sim.pending.append(_Action(reaction.click_at, number, "click", link[1]))
        if reaction.orders:
            sim.pending.append(_Action(reaction.click_at or now, number, "order"))
        outcome.stopped = outcome.stopped or reaction.stops
    return offset


def _act(sim: Simulation, http: httpx.Client, now: datetime) -> None:
    """Clicks and orders due by now; an order only if the shopper still orders then (a touch may have changed it)."""
    due = [a for a in sim.pending if a.at <= now]
    sim.pending = [a for a in sim.pending if a.at > now]
    for action in sorted(due, key=lambda a: (a.at, a.kind)):
        shopper, outcome, visit = sim.shoppers[action.number], sim.outcomes[action.number], sim.visits[action.number]
        if action.kind == "click":
            outcome.clicked += 1
            outcome.coupon = _follow(http, action.token) or outcome.coupon
        elif shopper.order_at == action.at and not outcome.ordered:
            discount = _discount(visit.value, outcome.coupon, shopper) if shopper.via_click else 0
            coupon = outcome.coupon if discount else None
            at = min(action.at, now - timedelta(seconds=30))  # inside this step, so not in the engine's future
            visit.call("page", at, name="Cart", properties={"path": f"/cart/{visit.cart_id}"})
            visit.order(at + timedelta(seconds=30), sim.profile.currency, coupon, discount)
            sim.calls += visit.calls
            visit.calls = []
            outcome.ordered, outcome.via_click, outcome.discount = True, shopper.via_click, discount
            outcome.total = visit.value - discount  # what `Order Completed` says, and the report counts


def _follow(http: httpx.Client, token: str) -> str | None:
    """Follow a restore link as a browser would (without going on to the shop); the coupon it applies, if any."""
    response = http.get(f"/r/{token}", follow_redirects=False)
    if response.status_code != 302:
        return None
    return next(iter(parse_qs(urlsplit(response.headers["location"]).query).get("coupon", [])), None)


def _discount(value: int, coupon: str | None, shopper: Shopper) -> int:
    """The offer of the message they ordered through, when its link applied a coupon."""
    percent = shopper.won_by.percent_off if shopper.won_by else 0
    return round(value * percent / 100) if coupon and percent else 0
