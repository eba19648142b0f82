"""`cartrecover train`, `cartrecover models list|activate|trial` and `cartrecover evaluate-policy`.

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
    trial = models.add_parser(
        "trial", parents=[common], help="the model on trial: how its side compares with the running policy's"
    )
    trial.add_argument(
        "action", nargs="?", default="status", choices=("status", "decide", "start", "stop"),
        help="status (default): the comparison so far; decide: promote or stop it if the comparison says so; "
        "start VERSION: put a version on trial; stop: end the trial, the running policy stays",
    )  # fmt: skip
    trial.add_argument("version", nargs="?", type=int, help="the version to start a trial of")
    trial.add_argument("--share", type=float, help="the share of shoppers on its side (default: [decisions])")
    trial.add_argument("--store", help="the store's name (default: the only one)")
    trial.add_argument("--until", help="use decisions whose recovery window closed before this ISO time (default: now)")
    trial.add_argument("--json", action="store_true")
    trial.set_defaults(run=_trial)

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
    """Judge a running trial first (it may promote or stop its model), then train, check offline, and register the
    new model: on trial unless the check found it worse (with `trial_share = 0`: live when it passed the check;
    `--force`: live), else not active. A trial that has not been decided yet keeps running: the new model is
    registered beside it."""
    from cartrecover.learn import evaluate, train

    engine, store = _engine_and_store(args)
    settings = engine.settings
    max_discount = settings.guardrails.max_discount_percent
    try:
        until = datetime.fromisoformat(args.until) if args.until else engine.clock.now()
        window = settings.rules.recovery_window
        steps = ["examples", "no-contact model", "contact model", "lifetime value", "send time", "offline check"]
        steps.append("registry")
        with tqdm(total=len(steps), unit="step", desc=f"training {store.name}", file=sys.stderr) as bar:

            def progress(step: str) -> None:
                bar.set_postfix_str(step)
                bar.update(1)

            with engine.database.read() as uow:
                found = train.examples(uow, store.store_id, until, window)
                purchasers = [s for s in uow.shoppers.all(store.store_id) if s.orders]
            judged = None if args.no_activate else _judge_trial(engine, store, found, apply=True)
            if judged is not None:
                print(f"trial of model v{judged.version}: {judged.verdict} ({judged.reason})", file=sys.stderr)
            progress("examples")
            try:
                trained = train.train(found, purchasers, timezone=store.timezone, progress=progress)
            except train.NotEnoughData as exc:
                print(f"not enough data yet: {exc}; the rule-based journey keeps running", file=sys.stderr)
                return 3
            checked = evaluate.check(found, purchasers, settings.decisions, max_discount)
            trained.metrics.update(checked.metrics())
            progress("offline check")
            with engine.database.write() as uow:
                version = uow.models.add(store.store_id, until, trained.metrics, trained.bundle.to_bytes(), False)
                share = settings.decisions.trial_share
                state = _deploy(
                    uow, store.store_id, version, args, passed=checked.passed, worse=checked.worse, share=share
                )
            progress("registry")
    finally:
        engine.close()
    if args.json:
        document = {"version": version, "active": state == "active", "state": state, "offline_check": checked.reason}
        document["trial"] = judged.as_dict() if judged is not None else None
        sys.stdout.write(json.dumps({**document, "metrics": trained.metrics}, indent=2) + "\n")
    else:
        print(f"model v{version} of {store.name}: {state}")
        print(f"  offline check: {checked.reason}")
        if state.startswith("registered, not active") and not args.no_activate:
            print("  the running policy stays; --force overrides")
        elif args.force and not checked.passed:
            print("  activated anyway (--force)")
        for name, value in trained.metrics.items():
            print(f"  {name:<32} {value:.4g}" if isinstance(value, float) else f"  {name:<32} {value}")
    return 0


def _deploy(
    uow: Any, store_id: int, version: int, args: argparse.Namespace, *, passed: bool, worse: bool, share: float
) -> str:
    """Make the new model live, put it on trial, or leave it registered; returns what was done, as printed.

    Without trials (`share` 0) a model goes live only when its offline check passed. With them, the trial decides:
    every model goes on trial unless the check found it worse (its whole interval below zero). At a shop's volume
    the check's interval is wide enough to make its point estimate a coin flip (docs/benchmarks.md), while the
    trial bounds what a worse model costs (its share, until its horizon) and measures the difference directly."""
    if args.no_activate:
        return "registered, not active"
    if args.force or (share == 0 and passed):
        uow.models.activate(store_id, version)
        return "active"
    if share == 0:
        return "registered, not active"
    if worse:
        return "registered, not active: the offline check finds it worse than the running policy"
    running = uow.models.trial(store_id)
    if running is not None:
        return (
            f"registered, not active: the trial of v{running[0]} is still undecided "
            f"(`cartrecover models trial start {version}` replaces it)"
        )
    uow.models.start_trial(store_id, version, share)
    return f"on trial: it decides for {share:.0%} of treated shoppers (`cartrecover models trial` compares)"


def _judge_trial(engine: Any, store: Any, found: Any, *, apply: bool) -> Any:
    """The judgement of the store's trial on `found` (None without a trial); with `apply`, a verdict is carried out:
    "promote" makes the model active, "stop" ends the trial and the running policy stays."""
    from cartrecover.learn import trial

    settings = engine.settings
    with engine.database.read() as uow:
        running = uow.models.trial(store.store_id)
    if running is None:
        return None
    version, share = running  # judged outside any write: the store's writers are not held up by it
    judged = trial.judge(found, version, share, settings.decisions, settings.guardrails.max_discount_percent)
    if apply and judged.verdict != trial.CONTINUE:
        with engine.database.write() as uow:
            if uow.models.trial(store.store_id) != running:  # stopped or replaced meanwhile: its verdict is moot
                return judged
            if judged.verdict == trial.PROMOTE:
                uow.models.activate(store.store_id, version)
            else:
                uow.models.end_trial(store.store_id)
    return judged


def _trial(args: argparse.Namespace) -> int:
    from cartrecover.learn import train, trial

    engine, store = _engine_and_store(args)
    try:
        if args.action in ("start", "stop"):
            return _start_or_stop(engine, store, args)
        until = datetime.fromisoformat(args.until) if args.until else engine.clock.now()
        with engine.database.read() as uow:
            found = train.examples(uow, store.store_id, until, engine.settings.rules.recovery_window)
        judged = _judge_trial(engine, store, found, apply=args.action == "decide")
    finally:
        engine.close()
    if judged is None:
        print(f"{store.name} has no model on trial", file=sys.stderr)
        return 3
    if args.json:
        sys.stdout.write(json.dumps(judged.as_dict(), indent=2) + "\n")
        return 0
    sides = ((f"model v{judged.version}", judged.candidate), ("running policy", judged.running))
    print(f"trial of model v{judged.version} in {store.name}, on {judged.share:.0%} of treated shoppers")
    for name, side in sides:
        print(f"  {name:<16} {side.decisions:>7} decisions closed, {side.profit:>9.3f} profit per decision")
    print(f"  verdict: {judged.verdict}: {judged.reason}")
    if args.action == "decide" and judged.verdict != trial.CONTINUE:
        done = f"model v{judged.version} is active" if judged.verdict == trial.PROMOTE else "the trial has ended"
        print(f"  done: {done}")
    return 0


def _start_or_stop(engine: Any, store: Any, args: argparse.Namespace) -> int:
    with engine.database.write() as uow:
        if args.action == "stop":
            ended = uow.models.end_trial(store.store_id)
            print(f"{store.name}: " + (f"the trial of v{ended} has ended" if ended else "no model was on trial"))
            return 0
        share = engine.settings.decisions.trial_share if args.share is None else args.share
        if args.version is None or not 0 < share < 1:
            raise ConfigError("models trial start needs a VERSION and a --share (or [decisions] trial_share) in (0, 1)")
        if not uow.models.start_trial(store.store_id, args.version, share):
            raise ConfigError(f"{store.name} has no model v{args.version} that is not the active one")
    print(f"{store.name}: model v{args.version} is on trial for {share:.0%} of treated shoppers")
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
            {
                "version": v.version,
                "trained_at": v.trained_at.isoformat(),
                "active": v.active,
                "trial_share": v.trial_share,
                "metrics": v.metrics,
            }
            for v in versions
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not versions:
        print(f"{store.name} has no trained model: the rule-based journey runs")
        return 0
    print(f"{'version':>7}  {'trained (data until)':<25} {'active':<10} {'examples':>8} {'no-contact AUC':>14}")
    for v in versions:
        auc = v.metrics.get("no_contact_auc")
        state = "yes" if v.active else f"trial {v.trial_share:.0%}" if v.trial_share else ""
        print(
            f"{v.version:>7}  {v.trained_at.isoformat()[:25]:<25} {state:<10} "
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
