"""The `[[experiments]]` section of `cartrecover.toml`: A/B tests of journey variants.

[[experiments]]
name = "incentive-test"
store = "my-shop"                  # optional: without it the experiment runs in every store
assignment = "fixed"               # "fixed": split by weight; "thompson": a bandit on recovered carts

[[experiments.variants]]
name = "control"                   # no steps: the journey the store would run anyway
weight = 1

[[experiments.variants]]
name = "early-discount"
weight = 1                         # weights are relative; ignored by "thompson"
[[experiments.variants.steps]]     # the same shape as [[journey.steps]]
name = "reminder"
delay = "30m"
channels = ["email"]
template = "incentive"
incentive = { percent = 10, min_cart_value = "0" }

A store runs at most one experiment: its own if one names it, else one without a store. Only treated shoppers
(never the holdout) take part.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cartrecover.errors import ConfigError
from cartrecover.journey_settings import JourneyConfig, parse_journey

_EXPERIMENT_KEYS = {"name", "store", "assignment", "variants"}
_VARIANT_KEYS = {"name", "weight", "steps"}


class AssignmentMethod(enum.StrEnum):
    """How shoppers are split between an experiment's variants."""

    FIXED = "fixed"  # by a hash of (store, experiment, shopper) against the weights; kept on the shopper
    THOMPSON = "thompson"  # per abandonment, by Thompson sampling on the variants' finished carts


@dataclass(frozen=True)
class VariantConfig:
    """One arm of an experiment: its share (fixed splits) and its journey (None: the store's own)."""

    name: str
    weight: float = 1.0
    journey: JourneyConfig | None = None


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment as configured."""

    name: str
    assignment: AssignmentMethod
    variants: tuple[VariantConfig, ...]
    store: str | None = None

    def variant(self, name: str) -> VariantConfig | None:
        """The variant with this name, or None (e.g. it was removed from the config since)."""
        return next((v for v in self.variants if v.name == name), None)


def parse_experiments(raw: Any, duration: Callable[[Any], Any]) -> tuple[ExperimentConfig, ...]:
    """`[[experiments]]`; a ConfigError names the experiment and variant at fault."""
    if not isinstance(raw, list):
        raise ConfigError("experiments must be an array of tables ([[experiments]])")
    experiments = tuple(_experiment(entry, number, duration) for number, entry in enumerate(raw, 1))
    scopes = [(e.store, e.name) for e in experiments]
    for scope in dict.fromkeys(s for s, _ in scopes):
        names = [n for s, n in scopes if s == scope]
        where = f"store {scope!r}" if scope is not None else "all stores"
        if len(names) > 1:
            raise ConfigError(f"experiments: {where} has {len(names)} experiments ({', '.join(names)}); one at a time")
    return experiments


def experiment_for(experiments: Sequence[ExperimentConfig], store_name: str) -> ExperimentConfig | None:
    """The experiment a store runs: the one naming it, else the one for all stores, else None."""
    own = next((e for e in experiments if e.store == store_name), None)
    return own or next((e for e in experiments if e.store is None), None)


def _experiment(entry: Any, number: int, duration: Callable[[Any], Any]) -> ExperimentConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"experiments[{number}] must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"experiments[{number}]: a name is required")
    where = f"experiment {name!r}"
    _no_unknown(entry, _EXPERIMENT_KEYS, where)
    store = entry.get("store")
    if store is not None and (not isinstance(store, str) or not store):
        raise ConfigError(f"{where}: store must be a store's name")
    try:
        method = AssignmentMethod(entry.get("assignment", "fixed"))
    except ValueError as exc:
        methods = ", ".join(m.value for m in AssignmentMethod)
        raise ConfigError(f"{where}: assignment must be one of {methods}, not {entry['assignment']!r}") from exc
    variants = entry.get("variants")
    if not isinstance(variants, list) or len(variants) < 2:
        raise ConfigError(f"{where}: at least two variants are needed ([[experiments.variants]])")
    parsed = tuple(_variant(v, where, i, duration) for i, v in enumerate(variants, 1))
    names = [v.name for v in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: variant names must differ ({', '.join(names)})")
    return ExperimentConfig(name, method, parsed, store)


def _variant(entry: Any, experiment: str, number: int, duration: Callable[[Any], Any]) -> VariantConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{experiment}, variant {number} must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{experiment}, variant {number}: a name is required")
    where = f"{experiment}, variant {name!r}"
    _no_unknown(entry, _VARIANT_KEYS, where)
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"{where}: weight must be a number above 0, not {weight!r}")
    steps = entry.get("steps")
    if steps is None:
        return VariantConfig(name, float(weight))
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{where}: steps must be a non-empty array of tables (leave it out for the store's journey)")
    for i, step in enumerate(steps, 1):
        if not isinstance(step, dict) or "delay" not in step:
            raise ConfigError(f'{where}, step {i}: a delay is required (e.g. delay = "1h")')
    try:
        journey = parse_journey({"steps": steps}, duration)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: a step is malformed ({exc!r})") from exc
    return VariantConfig(name, float(weight), journey)


def _no_unknown(entry: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(entry) - known
    if unknown:
        raise ConfigError(f"{where}: unknown settings {', '.join(sorted(unknown))}")
