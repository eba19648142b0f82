"""`cartrecover train`, `cartrecover models list|activate` and `cartrecover evaluate-policy`.

Training libraries are imported inside the commands: `serve` and `worker` never load them.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cartrecover.errors import ConfigError
from cartrecover.settings import load_settings


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the model commands on the CLI's subparsers."""
    train = sub.add_parser("train", parents=[common], help="fit a store's models from its logged decisions")
    train.add_argument("--store", help="the store's name (default: the only one)")
    train.add_argument("--until", help="use decisions whose recovery window closed before this ISO time (default: now)")
    train.add_argument("--no-activate", action="store_true", help="register the bundle without making it active")
    train.add_argument(
        "--force", action="store_true", help="activate it even if it did not beat the running policy offline"
    )
    train.add_argument("--json", action="store_true", help="print the metrics as JSON")
    train.set_defaults(run=_train)

    models = sub.add_parser("models", help="the model registry").add_subparsers(metavar="ACTION")
    listing = models.add_parser("list", parents=[common], help="every trained bundle, newest first, with metrics")
    listing.add_argument("--store", help="the store's name (default: the only one)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)
    activate = models.add_parser("activate", parents=[common], help="make a version active (roll back or forward)")
    activate.add_argument("version", help="a version number, or 'none' to go back to the rule-based journey")
    activate.add_argument("--store", help="the store's name (default: the only one)")
    activate.set_defaults(run=_activate)

    evaluate = sub.add_parser(
        "evaluate-policy", parents=[common], help="estimate a trained model's value on logged decisions (IPS, DR)"
    )
    evaluate.add_argument("--store", help="the store's name (default: the only one)")
    evaluate.add_argument("--version", type=int, help="the model version (default: the newest)")
    evaluate.add_argument("--until", help="decisions whose recovery window closed before this ISO time (default: now)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=_evaluate)


def _engine_and_store(args: argparse.Namespace) -> tuple[Any, Any]:
    from cartrecover.bootstrap import build_engine

    engine = build_engine(load_settings(args.config, data_dir=Path(args.data_dir) if args.data_dir else None))
    try:
        store = engine.stores.named_or_only(args.store)
    except BaseException:
        engine.close()
        raise
    return engine, store


def _train(args: argparse.Namespace) -> int:
    from cartrecover.learn import evaluate, train

    engine, store = _engine_and_store(args)
    try:
        until = datetime.fromisoformat(args.until) if args.until else engine.clock.now()
        window = engine.settings.rules.recovery_window
        steps = ["examples", "no-contact model", "contact model", "lifetime value", "send time", "offline check"]
        steps.append("registry")
        with tqdm(total=len(steps), unit="step", desc=f"training {store.name}", file=sys.stderr) as bar:

            def progress(step: str) -> None:
                bar.set_postfix_str(step)
                bar.update(1)

            with engine.database.read() as uow:
                found = train.examples(uow, store.store_id, until, window)
                purchasers = [s for s in uow.shoppers.all(store.store_id) if s.orders]
            progress("examples")
            try:
                trained = train.train(found, purchasers, timezone=store.timezone, progress=progress)
            except train.NotEnoughData as exc:
                print(f"not enough data yet: {exc}; the rule-based journey keeps running", file=sys.stderr)
                return 3
            settings = engine.settings
            checked = evaluate.check(found, purchasers, settings.decisions, settings.guardrails.max_discount_percent)
            trained.metrics.update(checked.metrics())
            progress("offline check")
            activate = not args.no_activate and (checked.passed or args.force)
            with engine.database.write() as uow:
                version = uow.models.add(store.store_id, until, trained.metrics, trained.bundle.to_bytes(), activate)
            progress("registry")
    finally:
        engine.close()
    if args.json:
        document = {"version": version, "active": activate, "offline_check": checked.reason}
        sys.stdout.write(json.dumps({**document, "metrics": trained.metrics}, indent=2) + "\n")
    else:
        state = "active" if activate else "registered, not active"
        print(f"model v{version} of {store.name}: {state}")
        print(f"  offline check: {checked.reason}")
        if not checked.passed and not args.no_activate:
            print(
                "  " + ("activated anyway (--force)" if args.force else "the running policy stays; --force overrides")
            )
        for name, value in trained.metrics.items():
            print(f"  {name:<32} {value:.4g}" if isinstance(value, float) else f"  {name:<32} {value}")
    return 0


def _list(args: argparse.Namespace) -> int:
    engine, store = _engine_and_store(args)
    try:
        with engine.database.read() as uow:
            versions = uow.models.versions(store.store_id)
    finally:
        engine.close()
    if args.json:
        rows = [
            {"version": v.version, "trained_at": v.trained_at.isoformat(), "active": v.active, "metrics": v.metrics}
            for v in versions
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not versions:
        print(f"{store.name} has no trained model: the rule-based journey runs")
        return 0
    print(f"{'version':>7}  {'trained (data until)':<25} {'active':<6} {'examples':>8} {'no-contact AUC':>14}")
    for v in versions:
        auc = v.metrics.get("no_contact_auc")
        print(
            f"{v.version:>7}  {v.trained_at.isoformat()[:25]:<25} {'yes' if v.active else '':<6} "
            f"{v.metrics.get('examples', ''):>8} {auc if auc is None else f'{auc:.3f}':>14}"
        )
    return 0


def _activate(args: argparse.Namespace) -> int:
    version = None if args.version == "none" else int(args.version)
    engine, store = _engine_and_store(args)
    try:
        with engine.database.write() as uow:
            done = uow.models.activate(store.store_id, version)
    finally:
        engine.close()
    if not done:
        raise ConfigError(f"{store.name} has no model v{version}")
    print(f"{store.name}: " + ("the rule-based journey runs" if version is None else f"model v{version} is active"))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cartrecover.learn import evaluate, train
    from cartrecover.models.bundle import Bundle

    engine, store = _engine_and_store(args)
    try:
        until = datetime.fromisoformat(args.until) if args.until else engine.clock.now()
        with engine.database.read() as uow:
            versions = uow.models.versions(store.store_id)
            chosen = next((v for v in versions if args.version in (None, v.version)), None)
            if chosen is None:
                raise ConfigError(f"{store.name} has no model" + (f" v{args.version}" if args.version else ""))
            body = uow.models.body(store.store_id, chosen.version)
            found = train.examples(uow, store.store_id, until, engine.settings.rules.recovery_window)
        bundle = Bundle.from_bytes(body, chosen.version)
        settings = engine.settings
        try:
            result = evaluate.evaluate(found, bundle, settings.decisions, settings.guardrails.max_discount_percent)
        except ValueError as exc:  # nothing to evaluate on: a message, not a traceback
            print(f"cannot evaluate model v{chosen.version}: {exc}", file=sys.stderr)
            return 3
    finally:
        engine.close()
    if args.json:
        rows = [vars(e) for e in result.estimates]
        document = {"version": chosen.version, "decisions": result.decisions, "logged_value": result.logged_value}
        sys.stdout.write(json.dumps({**document, "estimates": rows}, indent=2) + "\n")
        return 0
    print(
        f"model v{chosen.version} of {store.name} on {result.decisions} logged decisions with a propensity "
        f"(it would have chosen the logged plan in {result.agreement:.0%} of them)"
    )
    print(f"  {'logged policy (on-policy mean)':<34} {result.logged_value:>10.3f} per decision")
    for estimate in result.estimates:
        print(
            f"  {estimate.estimator + ' of the model':<34} {estimate.value:>10.3f} per decision, "
            f"95 % {estimate.low:.3f} to {estimate.high:.3f} (effective sample {estimate.effective_sample_size:.0f})"
        )
    return 0
