"""The `cartrecover` command."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cartrecover.entrypoints import models_cli
from cartrecover.errors import CartRecoverError, ConfigError
from cartrecover.settings import StoreConfig, load_settings, redact_url


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CartRecoverError as exc:
        print(f"cartrecover: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (default: ./cartrecover.toml if present)")
    common.add_argument("--data-dir", help="where the embedded database lives (default: ./data)")
    parser = argparse.ArgumentParser(prog="cartrecover", description="Win back abandoned carts.")
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP API and the lifecycle")
    serve.add_argument("--clock", choices=("system", "manual"), help="manual: time moves only via POST /api/v1/clock")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)

    worker = sub.add_parser("worker", parents=[common], help="run the lifecycle alone (serve starts one itself)")
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    worker.set_defaults(run=_worker)

    stores = sub.add_parser("stores", help="manage stores (tenants)").add_subparsers(metavar="ACTION")
    add = stores.add_parser("add", parents=[common], help="create a store and print its keys")
    add.add_argument("name")
    add.add_argument("--timezone", default="UTC")
    add.add_argument("--currency", default="USD")
    add.add_argument("--shopify-secret", action="append", default=[], help="the Shopify app's client secret")
    add.add_argument("--woocommerce-secret", help="the secret set on the WooCommerce webhook")
    add.add_argument("--restore-url", default="", help="restore link pattern for carts without one: https://…{cart_id}")
    add.add_argument("--coupon-style", choices=("shopify", "query"), default="", help="how coupons join restore links")
    add.add_argument("--json", action="store_true", help="print the keys as JSON")
    add.set_defaults(run=_stores_add)
    listing = stores.add_parser("list", parents=[common], help="list stores (no secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_stores_list)

    dead = sub.add_parser("dead-letters", help="messages whose retries ran out").add_subparsers(metavar="ACTION")
    dead_list = dead.add_parser("list", parents=[common], help="list dead letters with their reasons")
    dead_list.add_argument("--store", help="only this store's")
    dead_list.add_argument("--json", action="store_true")
    dead_list.set_defaults(run=_dead_list)
    dead_replay = dead.add_parser("replay", parents=[common], help="send dead letters again (guardrails re-checked)")
    dead_replay.add_argument("step_ids", nargs="*", help="the steps to replay")
    dead_replay.add_argument("--all", action="store_true", help="replay every dead letter")
    dead_replay.add_argument("--store", help="only this store's")
    dead_replay.set_defaults(run=_dead_replay)

    replay = sub.add_parser(
        "replay", parents=[common], help="replay Segment events from a JSONL file, in event-time order"
    )
    replay.add_argument("file", type=Path)
    replay.add_argument("--store", help="the store to replay into (default: the only one)")
    replay.add_argument("--until", help="after the last event, move the clock on to this ISO time (fires timers)")
    replay.add_argument("--send", action="store_true", help="really send journey messages (default: null channel)")
    replay.set_defaults(run=_replay)

    migrate = sub.add_parser("migrate", parents=[common], help="apply the state store's pending schema migrations")
    migrate.set_defaults(run=_migrate)

    _add_demo(sub, common)
    _add_simulate(sub)
    _add_audiences(sub, common)
    _add_report(sub, common)
    models_cli.add_commands(sub, common)
    return parser


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser("demo", parents=[common], help="simulated weeks of a store: the report next to the truth")
    demo.add_argument("--days", type=int, default=21, help="simulated days of arrivals (default 21)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--shoppers", type=int, help="visitors a day (default: the simulator's 300)")
    demo.add_argument(
        "--learning-loop", choices=("on", "off"), default="on",
        help="then explore, train and deploy a model on a busier store, against the fixed journey (default on)",
    )  # fmt: skip
    demo.set_defaults(run=_demo)


def _add_simulate(sub: Any) -> None:
    simulate = sub.add_parser("simulate", help="simulated shoppers against a fresh engine: true lift vs measured")
    simulate.add_argument("--days", type=int, default=14, help="simulated days of arrivals (default 14)")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--profile", help="default, fashion, electronics, or a TOML/JSON file (docs/simulator.md)")
    simulate.add_argument("--data-dir", type=Path, help="the engine's data directory (default: a new temporary one)")
    simulate.set_defaults(run=_simulate)


def _add_audiences(sub: Any, common: argparse.ArgumentParser) -> None:
    audiences = sub.add_parser("audiences", help="ad audiences of abandoners, hashed").add_subparsers(metavar="ACTION")
    export = audiences.add_parser("export", parents=[common], help="the store's abandoners who may be retargeted")
    export.add_argument("--store", required=True, help="the store's name")
    export.add_argument("--since", help="ISO-8601 (default: 30 days before --until)")
    export.add_argument("--until", help="ISO-8601 (default: now)")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--out", type=Path, help="write here instead of stdout")
    export.set_defaults(run=_audiences_export)


def _serve(args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    from cartrecover.bootstrap import build_engine

    settings = load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None, clock=args.clock)
    # The server's and the worker's processes build their own settings from the environment: hand ours over.
    if args.config:
        os.environ["CARTRECOVER_CONFIG"] = str(Path(args.config).resolve())
    os.environ["CARTRECOVER_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["CARTRECOVER_CLOCK"] = settings.clock
    build_engine(settings).close()  # creates the schemas and the configured stores before serving
    host, port = args.host or settings.host, args.port or settings.port
    mode = settings.lifecycle_mode
    print(
        f"cartrecover listening on http://{host}:{port} (clock: {settings.clock}, lifecycle: {mode}, "
        f"state: {redact_url(settings.resolved_database_url)}, log: {redact_url(settings.resolved_event_log_url)})",
        flush=True,
    )
    supervisor = WorkerSupervisor() if mode == "process" else None
    try:
        Granian(
            "cartrecover.entrypoints.http.asgi:create",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            factory=True,
            workers=1,
            log_access=False,
        ).serve()
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


class WorkerSupervisor:
    """Keeps one `cartrecover worker` running beside the API, restarting it (with backoff) if it dies."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            command = [sys.executable, "-m", "cartrecover", "worker", "--parent-pid", str(os.getpid())]
            # close_fds=False lets Popen use posix_spawn: with fork + exec it would wait on a pipe for the exec,
            # and a fork of Granian's at that moment inherits the pipe and keeps that wait from ever ending.
            # (Python's own descriptors are not inheritable, so nothing leaks into the worker.)
            self._process = subprocess.Popen(command, close_fds=False)
            code = self._process.wait()
            if self._stopping.is_set():
                return
            print(f"cartrecover: the lifecycle worker exited with {code}; restarting in {backoff:g} s", file=sys.stderr)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 30)

    def stop(self) -> None:
        """Stop the worker and stop restarting it."""
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()


def _worker(args: argparse.Namespace) -> int:
    from cartrecover.entrypoints.worker import run_worker

    settings = load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None, clock="system")
    return run_worker(settings, parent_pid=args.parent_pid)


def _stores_add(args: argparse.Namespace) -> int:
    from cartrecover.bootstrap import build_engine

    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    config = StoreConfig(
        name=args.name,
        timezone=args.timezone,
        currency=args.currency.upper(),
        shopify_secrets=tuple(args.shopify_secret),
        woocommerce_secret=args.woocommerce_secret,
        restore_url=args.restore_url,
        coupon_style=args.coupon_style,
    )
    store, keys = engine.add_store(config)
    engine.close()
    if args.json:
        print(json.dumps({"name": store.name, "store_id": store.store_id, **keys}, indent=2))
    else:
        print(f"store {store.name!r} created (id {store.store_id}). Keep these secret; the admin key is shown once.")
        for label, value in keys.items():
            print(f"  {label:20s} {value}")
    return 0


def _stores_list(args: argparse.Namespace) -> int:
    from cartrecover.bootstrap import build_engine

    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    rows = [
        {"store_id": s.store_id, "name": s.name, "timezone": s.timezone, "currency": s.currency}
        for s in engine.stores.all()
    ]
    engine.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['store_id']:>4}  {row['name']:30s} {row['timezone']:20s} {row['currency']}")
    return 0


def _dead_list(args: argparse.Namespace) -> int:
    from cartrecover.bootstrap import build_engine

    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    store_id = _store_id(engine, args.store)
    rows = [
        {
            "step_id": s.step_id,
            "store_id": s.store_id,
            "cart_id": s.cart_id,
            "step": s.name,
            "channel": s.channel.value if s.channel else None,
            "attempts": s.attempts,
            "reason": s.reason,
        }
        for s in engine.journeys.dead_letters(store_id)
    ]
    engine.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['step_id']}  {row['channel'] or '-':6} attempts {row['attempts']}  {row['reason']}")
        print(f"{len(rows)} dead letter(s)")
    return 0


def _dead_replay(args: argparse.Namespace) -> int:
    from cartrecover.bootstrap import build_engine

    if not args.step_ids and not args.all:
        print("cartrecover: name the steps to replay, or pass --all", file=sys.stderr)
        return 2
    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    count = engine.journeys.replay_dead(_store_id(engine, args.store), args.step_ids or None, engine.clock.now())
    engine.close()
    print(f"{count} dead letter(s) scheduled again")
    return 0


def _store_id(engine: Any, name: str | None) -> int | None:
    if name is None:
        return None
    store = engine.stores.by_name(name)
    if store is None:
        raise ConfigError(f"no store named {name!r}")
    return int(store.store_id)


def _migrate(args: argparse.Namespace) -> int:
    from cartrecover.bootstrap import migrate_database

    settings = load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None)
    migrated = migrate_database(settings)
    for name in migrated.applied:
        print(f"applied {name}")
    print(f"the state store is at schema version {migrated.version}" + ("" if migrated.applied else ": up to date"))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from cartrecover.entrypoints.replay import replay_file
    from cartrecover.ingest.timestamps import parse_timestamp

    settings = load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None, clock="manual")
    until = parse_timestamp(args.until, "--until") if args.until else None
    summary = replay_file(settings, args.file, args.store, until, send=args.send)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cartrecover.entrypoints import demo_stack
    from cartrecover.simulate.demo import run_demo

    data_dir = Path(args.data_dir) if args.data_dir else None
    # The config (or CARTRECOVER_DATABASE_URL / CARTRECOVER_EVENT_LOG_URL) chooses the stack; nothing else of it
    # applies: the demo configures its store itself.
    stack = demo_stack.prepare(load_settings(args.config))
    if stack.made:
        print("on the scale-out stack: " + "; ".join(stack.made))
    with demo_stack.environment(stack.variables):
        status = run_demo(data_dir=data_dir, days=args.days, seed=args.seed, shoppers=args.shoppers)
    if stack.made:
        print("\n" + demo_stack.describe(stack))
    if args.learning_loop == "on":
        from cartrecover.simulate.demo import run_learning_loop

        if stack.made:
            print("\nthe learning loop runs on the embedded stack: it forks a run by copying its data directory")
        with demo_stack.environment({}):
            status = max(status, run_learning_loop(data_dir=data_dir / "learning-loop" if data_dir else None))
    return status


def _simulate(args: argparse.Namespace) -> int:
    from cartrecover.simulate.run import run_simulation
    from cartrecover.simulate.shoppers import profile_named

    try:
        profile = profile_named(args.profile) if args.profile else None
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read profile {args.profile}: {exc}") from exc
    run_simulation(days=args.days, seed=args.seed, profile=profile, data_dir=args.data_dir)
    return 0


def _audiences_export(args: argparse.Namespace) -> int:
    from cartrecover.bootstrap import build_engine
    from cartrecover.deliver import audiences
    from cartrecover.entrypoints.http.audiences import window

    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    try:
        store_id = _store_id(engine, args.store)
        assert store_id is not None  # --store is required
        since, until = window(args.since, args.until, engine.clock.now())
        with engine.database.read() as uow:
            members = audiences.abandoners(
                uow, store_id, since, until, require_ads_consent=engine.settings.guardrails.require_ads_consent
            )
    finally:
        engine.close()
    if args.format == "csv":
        text = audiences.to_csv(members)
    else:
        document = {"since": since.isoformat(), "until": until.isoformat(), "members": audiences.to_json(members)}
        text = json.dumps(document, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"{len(members)} shopper(s) written to {args.out}", file=sys.stderr)
    return 0


def _add_report(sub: Any, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser("report", parents=[common], help="what was recovered and earned against the holdout")
    report.add_argument("--store", help="the store's name (default: the only one)")
    report.add_argument("--since", help="carts abandoned from this ISO-8601 time (default: 30 days before --until)")
    report.add_argument("--until", help="carts abandoned before this ISO-8601 time (default: now)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    from cartrecover import measure
    from cartrecover.bootstrap import build_engine
    from cartrecover.entrypoints.http.audiences import window

    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    try:
        store = engine.stores.named_or_only(args.store)
        since, until = window(args.since, args.until, engine.clock.now())
        found = engine.recovery_report(store, since, until)
    finally:
        engine.close()
    if args.json:
        sys.stdout.write(json.dumps(measure.as_json(found), indent=2) + "\n")
    else:
        sys.stdout.write(f"Store {store.name}\n" + measure.as_table(found))
    return 0
