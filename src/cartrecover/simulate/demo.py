"""`cartrecover demo`: a generated day of shop traffic through a real server, then what the engine made of it."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from cartrecover.simulate.server import all_carts, cli_json, iso, post, server
from cartrecover.simulate.traffic import Day, generate_day

STORE = "demo-shop"


def run_demo(data_dir: Path | None = None, shoppers: int = 400, seed: int = 7) -> int:
    """Generate a day, send it over HTTP on the manual clock, and print the carts the engine found."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-demo-"))
    keys = cli_json("stores", "add", STORE, "--json", "--data-dir", str(data_dir), "--timezone", "Europe/Berlin")
    start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = generate_day(start, shoppers, seed)
    print(f"generated {len(day.calls)} Segment calls from {shoppers} shoppers on {start.date()} (seed {seed})")
    with server(data_dir) as base, httpx.Client(base_url=base, timeout=60) as http:
        admin = {"Authorization": f"Bearer {keys['admin_key']}"}
        sent, seconds = _send_day(http, keys["write_key"], admin, day, start)
        post(http, "/api/v1/clock", {"now": iso(start + timedelta(days=4))}, admin)  # the whole journey
        carts = all_carts(http, admin)
        stopped = _a_journey_stopped_by_an_order(http, admin, carts)
    _report(day, carts, sent, seconds, data_dir)
    _report_messages(data_dir, stopped)
    return 0 if _agrees(day, carts) else 1


def _send_day(
    http: httpx.Client, write_key: str, admin: dict[str, str], day: Day, start: datetime
) -> tuple[int, float]:
    """Minute by minute: move the clock to the minute's end, then send its calls as one batch (sentAt = then)."""
    calls = sorted(day.calls, key=lambda c: c["timestamp"])
    began, sent = time.perf_counter(), 0
    http.post("/api/v1/clock", json={"now": iso(start)}, headers=admin).raise_for_status()
    with tqdm(total=len(calls), unit="ev", desc="day of traffic") as progress:
        for minute, group in groupby(calls, key=lambda c: c["timestamp"][:16]):
            batch = list(group)
            end = datetime.fromisoformat(minute + ":00+00:00") + timedelta(minutes=1)
            post(http, "/api/v1/clock", {"now": iso(end)}, admin)
            post(http, "/v1/batch", {"batch": batch, "sentAt": iso(end), "writeKey": write_key}, {})
            sent += len(batch)
            progress.update(len(batch))
    return sent, time.perf_counter() - began


def _report(day: Day, carts: list[dict[str, Any]], sent: int, seconds: float, data_dir: Path) -> None:
    by_status = Counter(c["status"] for c in carts)
    expected = Counter(expected_statuses(day, carts).values())
    print(
        f"\nsent {sent} events over HTTP in {seconds:.1f} s, moving the manual clock every simulated minute; "
        f"{day.browsers} visitors only browsed\n"
    )
    print(f"{'cart status':<14}{'engine':>8}{'expected':>10}{'value':>14}")
    for status in ("active", "abandoned", "recovering", "recovered", "converted", "expired"):
        value = sum(c["value"] for c in carts if c["status"] == status) / 100
        print(f"{status:<14}{by_status.get(status, 0):>8}{expected.get(status, 0):>10}{value:>14,.2f}")
    abandoned = sorted((c for c in carts if c["status"] == "abandoned"), key=lambda c: -c["value"])
    print(f"\nabandoned carts ({len(abandoned)}), by value:")
    for cart in abandoned[:15]:
        print(
            f"  {cart['id']:<14} {cart['value_display']:>9} {cart['currency']}  {cart['items']} line(s)  "
            f"abandoned {cart['abandoned_at']}{'  checkout started' if cart['checkout_started'] else ''}"
        )
    if len(abandoned) > 15:
        print(f"  … and {len(abandoned) - 15} more")
    mismatched = _mismatches(day, carts)
    print(
        f"\n{'every cart reached the status its traffic implies' if not mismatched else f'{len(mismatched)} carts differ: {mismatched[:5]}'}"
    )
    command = Path(sys.executable).with_name("cartrecover")
    command_text = str(command) if command.exists() else "cartrecover"
    print(f"data kept in {data_dir}; explore it with: {command_text} serve --data-dir {data_dir}")


def _a_journey_stopped_by_an_order(
    http: httpx.Client, admin: dict[str, str], carts: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The timeline of a recovered cart that got a message before its order cancelled the rest."""
    for cart in carts:
        if cart["status"] != "recovered":
            continue
        detail: dict[str, Any] = http.get(f"/api/v1/carts/{cart['id']}", headers=admin).json()
        kinds = [(e["kind"], e.get("status")) for e in detail["timeline"]]
        if ("message", "sent") in kinds and ("step", "cancelled") in kinds:
            return detail
    return None


def _report_messages(data_dir: Path, stopped: dict[str, Any] | None) -> None:
    path = data_dir / "messages.jsonl"
    messages = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    by_step = Counter((m["step_id"].rsplit("#", 1)[1], m["channel"]) for m in messages)
    names = {"0": "reminder (1 h)", "1": "second reminder (24 h)", "2": "last chance (72 h)"}
    print(f"\nmessages sent through the console channel: {len(messages)} (all in {path})")
    for (number, channel), count in sorted(by_step.items()):
        print(f"  {names.get(number, number):<24} {channel:<6} {count:>5}")
    for message in messages[:3]:
        print(f"  e.g. [{message['channel']}] to {message['to']}: {message['subject']}")
    if stopped is not None:
        print(f"\na journey stopped by an order — cart {stopped['id']}:")
        for entry in stopped["timeline"]:
            if entry["kind"] == "event":
                continue
            what = entry.get("to") or entry.get("status") or entry.get("policy")
            why = entry.get("reason") or entry.get("step") or ""
            print(f"  {entry['at'][:19]}  {entry['kind']:<9} {what!s:<22} {why}")


def expected_statuses(day: Day, carts: list[dict[str, Any]]) -> dict[str, str]:
    """What each cart's traffic implies; a holdout shopper's abandoned cart gets no reminder, so stays abandoned."""
    held_out = {c["id"] for c in carts if c.get("group") == "holdout"}
    return {
        cart: "abandoned" if want == "recovering" and cart in held_out else want for cart, want in day.fates.items()
    }


def _mismatches(day: Day, carts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    found = {c["id"]: c["status"] for c in carts}
    expected = expected_statuses(day, carts)
    return [(cart, want, found.get(cart, "missing")) for cart, want in expected.items() if found.get(cart) != want]


def _agrees(day: Day, carts: list[dict[str, Any]]) -> bool:
    return not _mismatches(day, carts)
