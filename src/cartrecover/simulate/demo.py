"""`cartrecover demo`: a few simulated weeks of a store through a real engine, then its report next to the truth.

The shopper simulator (run.py) plays the store against `cartrecover serve --clock manual`; the demo then prints
the engine's own `cartrecover report` for the run, the simulator's true incremental revenue beside the report's
estimate and interval, whether every cart reached the status its traffic implies, the messages sent and one
journey an order stopped, and how to open the dashboard on the data afterwards. Then the learning loop
(simulate/loop.py): a busier store explores, `cartrecover train` fits its models, and the learned policy runs
against the fixed journey on the same shoppers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from cartrecover.simulate.compare import print_summary
from cartrecover.simulate.loop import run_loop
from cartrecover.simulate.run import run_simulation
from cartrecover.simulate.server import iso
from cartrecover.simulate.shoppers import StoreProfile

STORE = "demo-shop"
PORT = 8080  # `cartrecover serve`'s default
LOOP_VISITORS, LOOP_EXPLORE_DAYS, LOOP_EVAL_DAYS = 1500, 21, 7  # the learning loop's store and weeks


def run_demo(data_dir: Path | None = None, days: int = 21, seed: int = 7, shoppers: int | None = None) -> int:
    """Simulate `days` of the demo store; 0 when the engine's carts and report agree with the simulated traffic."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="cartrecover-demo-"))
    profile = StoreProfile(name=STORE)
    profile = profile if shoppers is None else replace(profile, shoppers_per_day=shoppers)
    print(
        f"simulating {days} days of {STORE} ({profile.shoppers_per_day} visitors a day, seed {seed}, "
        f"{profile.holdout_share:.0%} holdout) against a real engine on the manual clock, then 7 days to settle"
    )
    summary = run_simulation(days, seed, profile, data_dir, show=False, inspect=_a_journey_stopped_by_an_order)
    _print_report(data_dir, summary, profile)
    print_summary(summary)
    consistent = _print_checks(summary)
    _print_messages(data_dir, summary.get("stopped"))
    _print_dashboard(data_dir, summary)
    print(f"\n{days} simulated days in {summary['wall_seconds']:.0f} s wall time")
    return 0 if consistent else 1


def run_learning_loop(data_dir: Path | None = None, seed: int = 1) -> int:
    """Explore, train and deploy on a busier store; 0 when the learned policy beats the fixed journey."""
    visitors, explore_days, eval_days = LOOP_VISITORS, LOOP_EXPLORE_DAYS, LOOP_EVAL_DAYS
    profile = replace(StoreProfile(name=STORE), shoppers_per_day=visitors)
    print(
        f"\nthe learning loop: {explore_days} days of {STORE} at {visitors} visitors a day exploring, "
        f"`cartrecover train`, then {eval_days} days with the model, and the same {eval_days} days under the "
        f"fixed 1h / 24h / 72h + 10 % journey (10–15 minutes on 2 cores)"
    )
    result = run_loop(
        profile, seed, explore_days=explore_days, eval_days=eval_days, data_dir=data_dir, progress=True,
        say=lambda line: print(f"  {line}", flush=True),
    )  # fmt: skip
    print("\n" + "\n".join("  " + line for line in result.training.strip().splitlines()[:12]))
    if not result.deployed:
        print("  the offline check found the model worse than the running journey: the rules ran the evaluation days")
    side = " on the model's side of its trial" if result.running_carts else ""
    print(f"\nexpected net incremental profit on the {result.carts} treated carts of the {eval_days} days{side} "
          f"(the simulator's exact expectation, {profile.currency} minor units):")  # fmt: skip
    for name, priced in (
        ("learned policy", result.learned),
        ("fixed journey", result.fixed),
        ("oracle", result.oracle),
    ):
        print(
            f"  {name:<16}{priced.profit:>12,.0f}   discounts {priced.discount:>10,.0f}   messages {priced.messages:>8,.0f}"
        )
    realised = result.realised
    print(
        f"  learned ÷ fixed {result.ratio('profit'):.2f}, of the oracle {result.ratio('oracle'):.0%}; as realised "
        f"in the two runs: {realised['learned']['true_incremental_profit']:,.0f} against "
        f"{realised['fixed']['true_incremental_profit']:,.0f}"
    )
    if result.running_carts:
        print(
            f"  the running policy's side: {result.running_carts} carts, {result.running.profit:,.0f}; the model "
            f"makes {result.trial_difference:+,.1f} per cart more (the truth `cartrecover models trial` estimates "
            f"once the carts' recovery windows have closed)"
        )
    top = sorted(result.plans.items(), key=lambda item: -item[1])[:6]
    print("  the learned run's plans: " + ", ".join(f"{name} ({count})" for name, count in top))
    return 0 if result.learned.profit > result.fixed.profit else 1


def _a_journey_stopped_by_an_order(http: httpx.Client, admin: dict[str, str]) -> dict[str, Any]:
    """The timeline of a recovered cart that got a message before its order cancelled the rest."""
    page = http.get("/api/v1/carts", params={"status": "recovered", "limit": 200}, headers=admin)
    page.raise_for_status()
    for cart in page.json()["carts"]:
        detail: dict[str, Any] = http.get(f"/api/v1/carts/{cart['id']}", headers=admin).json()
        kinds = [(e["kind"], e.get("status")) for e in detail["timeline"]]
        if ("message", "sent") in kinds and ("step", "cancelled") in kinds:
            return {"stopped": detail}
    return {"stopped": None}


def _command() -> str:
    """How to run `cartrecover` here: the script beside this interpreter if there is one."""
    script = Path(sys.executable).with_name("cartrecover")
    return str(script) if script.exists() else "cartrecover"


def _print_report(data_dir: Path, summary: dict[str, Any], profile: StoreProfile) -> None:
    """`cartrecover report` over the run's carts, as a user would run it (the demo's server has stopped)."""
    window = ("--since", iso(summary["start"]), "--until", iso(summary["end"]))
    args = ("report", "--data-dir", str(data_dir), *window)
    env = {**os.environ, "CARTRECOVER_CONFIG": "", "CARTRECOVER_HOLDOUT_SHARE": str(profile.holdout_share)}
    out = subprocess.run(
        [sys.executable, "-m", "cartrecover", *args], capture_output=True, text=True, check=True, env=env
    )
    print(f"\n$ {_command()} {' '.join(args)}\n{out.stdout}")


def _print_checks(summary: dict[str, Any]) -> bool:
    """Whether every cart's status and the report's counts are what the simulated traffic implies."""
    mismatched = summary["mismatches"]
    print(
        "\nevery cart reached the status its traffic implies"
        if not mismatched
        else f"\n{len(mismatched)} carts differ from what their traffic implies: {mismatched[:5]}"
    )
    differ = [
        f"{name}: simulated {row['recovered']} orders worth {row['revenue']}, "
        f"report {row.get('report_recovered')} worth {row.get('report_revenue')}"
        for name, row in summary["groups"].items()
        if (row["recovered"], row["revenue"]) != (row.get("report_recovered"), row.get("report_revenue"))
    ]
    print("\n".join(differ) if differ else "the report counts exactly the simulated orders and their totals, per group")
    return not mismatched and not differ


def _print_messages(data_dir: Path, stopped: dict[str, Any] | None) -> None:
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


def _print_dashboard(data_dir: Path, summary: dict[str, Any]) -> None:
    """The demo's server has stopped: how to serve the data again and open the dashboard on it."""
    base, key, end = f"http://127.0.0.1:{PORT}", summary["admin_key"], iso(summary["end"])
    print(
        "\nthe dashboard: the demo's server stopped when the demo ended. Serve the data again on the manual clock,"
        "\nmove that clock to the end of the simulated weeks (the dashboard shows the days before the engine's now),"
        "\nthen open the page and paste the store's admin key:"
        f"\n  {_command()} serve --clock manual --data-dir {data_dir} --port {PORT}"
        f"\n  curl -X POST {base}/api/v1/clock -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d '{{\"now\": \"{end}\"}}'"
        f"\n  {base}/dashboard   admin key: {key}"
    )
