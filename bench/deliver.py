"""The delivery worker on SQLite: due steps claimed (every guardrail checked), sent and marked sent, per second.

    python bench/deliver.py [--steps N] [--channel null|file|both] [--batch B]

N abandoned carts of N consenting shoppers, each with one reminder step due an hour ago, are written through
the ports (carts, shoppers, outbox: what planning writes) into a fresh data dir. Then `engine.deliver_due` runs
in a loop until nothing is due, as the worker does. Per step that is: the claim transaction (read the step,
cart and shopper, consent, suppression, quiet hours, caps, lease), the template rendered, the channel called,
and the settling transaction (sent, the cart to RECOVERING, two timeline entries). `null` sends nowhere;
`file` is the console channel appending JSON lines to a file. Durability is the default (`full`: fsync per
commit). Only the delivery loop is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cartrecover.bootstrap import build_engine  # noqa: E402
from cartrecover.domain.cart import Cart, CartStatus  # noqa: E402
from cartrecover.domain.events import LineItem  # noqa: E402
from cartrecover.domain.journey import Channel, Step, step_id  # noqa: E402
from cartrecover.engine import Engine  # noqa: E402
from cartrecover.journey_settings import DEFAULT_CHANNELS  # noqa: E402
from cartrecover.ports.shoppers import Shopper  # noqa: E402
from cartrecover.settings import StoreConfig, load_settings  # noqa: E402


def plan(engine: Engine, steps: int, now: datetime) -> None:
    """Write `steps` abandoned carts, their shoppers and one due reminder each, 5,000 per transaction."""
    store, _ = engine.add_store(StoreConfig(name="bench"))
    abandoned = now - timedelta(hours=2)
    line = LineItem("p1", 1, 2500, name="Linen shirt", url="https://shop.example/p1")
    for start in range(0, steps, 5000):
        with engine.database.write() as uow:
            planned = []
            for n in range(start, min(start + 5000, steps)):
                shopper_id, cart_id = f"s{n}", f"c{n}"
                uow.shoppers.save(
                    Shopper(store.store_id, shopper_id, email=f"{shopper_id}@example.com", consent={"email": True})
                )
                uow.carts.save(
                    Cart(
                        store.store_id,
                        cart_id,
                        shopper_id,
                        created_at=abandoned,
                        last_activity_at=abandoned,
                        status=CartStatus.ABANDONED,
                        items=(line,),
                        abandoned_at=abandoned,
                    )
                )
                planned.append(
                    Step(
                        step_id(cart_id, abandoned, 0),
                        store.store_id,
                        cart_id,
                        shopper_id,
                        0,
                        "reminder",
                        "reminder",
                        (Channel.EMAIL,),
                        due_at=now - timedelta(hours=1),
                    )
                )
            uow.outbox.add(planned)


def run(steps: int, channel: str, batch: int) -> dict[str, object]:
    """Plan, then deliver until nothing is due; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="cartrecover-deliver-") as tmp:
        data = Path(tmp) / "data"
        url = "null" if channel == "null" else f"file://{Path(tmp) / 'messages.jsonl'}"
        settings = load_settings(
            None, env={}, data_dir=data, clock="system", channels={**DEFAULT_CHANNELS, "email": url}
        )
        engine = build_engine(settings)
        now = datetime.now(UTC)
        plan(engine, steps, now)
        started = time.perf_counter()
        handled = 0
        while done := engine.journeys.deliver_due(now, limit=batch):
            handled += done
        elapsed = time.perf_counter() - started
        with engine.database.read() as uow:
            statuses = uow.outbox.count_by_status()
        engine.close()
        written = (Path(tmp) / "messages.jsonl").read_text().count("\n") if channel == "file" else None
    assert statuses == {"sent": steps}, statuses
    assert written in (None, steps), written
    return {
        "channel": channel,
        "steps": steps,
        "batch": batch,
        "seconds": round(elapsed, 2),
        "steps_per_s": round(handled / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--channel", choices=("null", "file", "both"), default="both")
    parser.add_argument("--batch", type=int, default=200, help="steps per claim (the worker's default is 200)")
    args = parser.parse_args()
    for channel in ("null", "file") if args.channel == "both" else (args.channel,):
        print(json.dumps(run(args.steps, channel, args.batch)), flush=True)


if __name__ == "__main__":
    main()
