"""One frozen settings object, from `cartrecover.toml` and `CARTRECOVER_*` environment variables."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cartrecover.decision_settings import DecisionConfig, parse_decisions
from cartrecover.domain.cart import AbandonmentRules
from cartrecover.domain.journey import Guardrails
from cartrecover.errors import ConfigError
from cartrecover.experiment_settings import ExperimentConfig, experiment_for, parse_experiments
from cartrecover.journey_settings import (
    DEFAULT_CHANNELS,
    DEFAULT_JOURNEY_CONFIG,
    JourneyConfig,
    MeasureConfig,
    parse_channels,
    parse_guardrails,
    parse_journey,
    parse_measure,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
COUPON_STYLES = ("", "query", "shopify")


_SECRET_PARAMETER = re.compile(r"((?:^|[?&;])(?:password|token|secret|key)=)[^&;]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with its password (and any password, token, secret or key parameter) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is not None:
        url = url.replace(parts.netloc, f"{parts.username or ''}:***@{parts.netloc.rsplit('@', 1)[1]}", 1)
    return _SECRET_PARAMETER.sub(r"\1***", url)


def parse_duration(text: str | int | float) -> timedelta:
    """'30m', '24h', '7d', '90s' or a number of seconds."""
    if isinstance(text, (int, float)):
        return timedelta(seconds=text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class StoreConfig:
    """A store declared in the config file; created or updated at start-up."""

    name: str
    write_key: str | None = None
    admin_key: str | None = None
    shopify_secrets: tuple[str, ...] = ()
    woocommerce_secret: str | None = None
    timezone: str = "UTC"
    currency: str = "USD"
    restore_url: str = ""  # pattern for carts without their own restore URL; {cart_id} is replaced
    coupon_style: str = ""  # "shopify", "query", or "" (shopify for *.myshopify.com, else query)
    # Where codes are created before a message names them: shopify://SHOP.myshopify.com?token=… or
    # woocommerce://HOST?key=ck_…&secret=cs_…; "" = none (codes are generated and linked, the shop must know them)
    coupons: str = field(default="", repr=False)  # holds a token: never printed
    journey: JourneyConfig | None = None  # the store's own journey ([[stores.journey.steps]]), else the default
    holdout_share: float | None = None  # the store's own holdout share, else the engine's

    def __post_init__(self) -> None:
        if self.coupon_style not in COUPON_STYLES:
            raise ConfigError(f"store {self.name!r}: coupon_style must be one of {', '.join(COUPON_STYLES)}")
        if self.restore_url and not self.restore_url.startswith(("https://", "http://")):
            raise ConfigError(f"store {self.name!r}: restore_url must be an http(s) URL")
        if self.holdout_share is not None:
            _check_share(self.holdout_share, f"store {self.name!r}: holdout_share")


def _check_share(share: float, what: str) -> None:
    if not 0 <= share < 1:
        raise ConfigError(f"{what} must be at least 0 and below 1, not {share}")


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Secrets are never printed (see `__repr__`)."""

    data_dir: Path = Path("data")
    database_url: str = ""
    event_log_url: str = ""
    cache_url: str = ""  # online features: memory://, redis://… or none; default: see resolved_cache_url
    lifecycle: str = "auto"  # auto: its own process on the system clock, in-process on the manual clock
    host: str = "127.0.0.1"
    port: int = 8080
    clock: str = "system"
    durability: str = "full"  # full: fsync before acknowledging; normal: survives a process crash only
    rules: AbandonmentRules = field(default_factory=AbandonmentRules)
    rate_limit: float = 10_000.0  # requests per second per store on ingest
    rate_burst: float = 20_000.0
    tick: float = 1.0  # seconds between timer sweeps on the system clock
    delivery_lease: timedelta = timedelta(minutes=5)  # a claimed step is claimed again after this if not settled
    holdout_share: float = 0.10  # shoppers tracked but never contacted: all lift figures come from them
    worker_nice: int = 10  # the lifecycle worker yields the CPU to the API: acknowledging events comes first
    worker_partitions: int = 0  # [worker] partitions: the lifecycle's partitions (by store); 0: 1 on SQLite, else 8
    worker_lease: timedelta = timedelta(seconds=10)  # [worker] lease: a dead worker's partitions move after this
    stores: tuple[StoreConfig, ...] = ()
    public_url: str = ""  # where links in messages point (default: http://host:port)
    secret_key: str = ""  # signs links and coupon codes; generated into <data_dir>/secret.key when empty
    templates: str = ""  # a folder of templates that override the packaged ones
    journey: JourneyConfig = DEFAULT_JOURNEY_CONFIG
    guardrails: Guardrails = field(default_factory=Guardrails)
    channels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    measure: MeasureConfig = field(default_factory=MeasureConfig)  # [measure]: attribution windows, channel costs
    experiments: tuple[ExperimentConfig, ...] = ()  # [[experiments]]: A/B tests of journey variants
    decisions: DecisionConfig = field(default_factory=DecisionConfig)  # [decisions]: the learned policy
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_share(self.holdout_share, "holdout_share")
        if self.worker_lease < timedelta(seconds=1):
            raise ConfigError(f"[worker] lease must be at least 1 s, not {self.worker_lease}")

    def holdout_share_for(self, store_name: str) -> float:
        """The share of a store's shoppers held out of every journey."""
        own = next((s.holdout_share for s in self.stores if s.name == store_name and s.holdout_share is not None), None)
        return self.holdout_share if own is None else own

    def journey_for(self, store_name: str) -> JourneyConfig:
        """The journey a store runs: its own if the config gives it one, else the default."""
        own = next((s.journey for s in self.stores if s.name == store_name and s.journey is not None), None)
        return own or self.journey

    def experiment_for(self, store_name: str) -> ExperimentConfig | None:
        """The experiment a store runs (its own, else the one for all stores), or None."""
        return experiment_for(self.experiments, store_name)

    @property
    def resolved_public_url(self) -> str:
        """The base of links in messages."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        database = redact_url(self.resolved_database_url)
        return f"Settings(database_url={database!r}, clock={self.clock!r}, stores={len(self.stores)})"

    @property
    def resolved_database_url(self) -> str:
        """The state store's URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'cartrecover.db'}"

    @property
    def resolved_event_log_url(self) -> str:
        """The event log's URL, defaulting to its own SQLite file in the data directory."""
        return self.event_log_url or f"sqlite:///{self.data_dir / 'events.db'}"

    @property
    def resolved_cache_url(self) -> str:
        """The cache of online features: in the process where one worker decides and delivers (SQLite, one
        partition), else none.

        Several workers (what PostgreSQL and partitions are for) must share their cache, or one would keep counting
        from entries that another's sends made stale: they get `redis://…`, or no cache.
        """
        if self.cache_url:
            return self.cache_url
        one_worker = self.resolved_database_url.startswith("sqlite:") and self.resolved_worker_partitions == 1
        return "memory://" if one_worker else "none:"

    @property
    def resolved_worker_partitions(self) -> int:
        """How many partitions the lifecycle is split into: configured, else 1 on SQLite (one worker) and 8 on a
        state store that several workers share."""
        if self.worker_partitions < 0:
            raise ConfigError(f"[worker] partitions must be 1 or more (0: the default), not {self.worker_partitions}")
        if self.worker_partitions:
            return self.worker_partitions
        return 1 if self.resolved_database_url.startswith("sqlite:") else 8

    @property
    def lifecycle_mode(self) -> str:
        """Where the lifecycle runs: "process" (a worker process), "in-process", or "off" (another machine's)."""
        if self.lifecycle == "auto":
            return "in-process" if self.clock == "manual" else "process"
        if self.lifecycle not in ("process", "in-process", "off"):
            raise ConfigError(f"lifecycle must be auto, process, in-process or off, not {self.lifecycle!r}")
        return self.lifecycle


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from a TOML file (if given or present as ./cartrecover.toml), then env, then overrides."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("CARTRECOVER_CONFIG") or ("cartrecover.toml" if Path("cartrecover.toml").exists() else None)
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    settings = _from_mapping(raw)
    settings = replace(settings, decisions=parse_decisions(raw.get("decisions", {}), parse_duration, env))
    simple = {f.name: f for f in fields(Settings) if f.type in ("str", "int", "float", "Path")}
    for name, spec in simple.items():
        value = env.get(f"CARTRECOVER_{name.upper()}")
        if value is not None:
            settings = replace(settings, **{name: _coerce(spec.type, value, name)})
    if lease := env.get("CARTRECOVER_WORKER_LEASE"):
        settings = replace(settings, worker_lease=parse_duration(lease))
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _coerce(kind: Any, value: str, name: str) -> Any:
    try:
        return {"int": int, "float": float, "Path": Path}.get(kind, str)(value)
    except ValueError as exc:
        raise ConfigError(f"CARTRECOVER_{name.upper()}: {exc}") from exc


def _from_mapping(raw: dict[str, Any]) -> Settings:
    engine = dict(raw.get("engine", {}))
    lifecycle = raw.get("lifecycle", {})
    rules = AbandonmentRules(
        **{k: parse_duration(v) for k, v in lifecycle.items() if k in ("idle", "checkout_idle", "recovery_window")}
    )
    stores = tuple(
        StoreConfig(
            **{
                **s,
                "shopify_secrets": tuple(s.get("shopify_secrets", ())),
                "journey": parse_journey(s["journey"], parse_duration) if "journey" in s else None,
            }
        )
        for s in raw.get("stores", ())
    )
    known = {f.name for f in fields(Settings)} - {
        "rules",
        "stores",
        "extra",
        "journey",
        "guardrails",
        "channels",
        "measure",
        "experiments",
        "decisions",
    }
    unknown = set(engine) - known
    if unknown:
        raise ConfigError(f"unknown [engine] settings: {', '.join(sorted(unknown))}")
    if "data_dir" in engine:
        engine["data_dir"] = Path(engine["data_dir"])
    if "delivery_lease" in engine:
        engine["delivery_lease"] = parse_duration(engine["delivery_lease"])
    engine.update(_worker(raw.get("worker", {})))
    if "worker_lease" in engine:
        engine["worker_lease"] = parse_duration(engine["worker_lease"])
    try:
        return Settings(
            **engine,
            rules=rules,
            stores=stores,
            journey=parse_journey(raw.get("journey", {}), parse_duration),
            guardrails=parse_guardrails(raw.get("guardrails", {}), parse_duration),
            channels=parse_channels(raw.get("channels", {})),
            measure=parse_measure(raw.get("measure", {}), parse_duration),
            experiments=parse_experiments(raw.get("experiments", []), parse_duration),
        )
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def _worker(raw: dict[str, Any]) -> dict[str, Any]:
    """`[worker]`: partitions, lease (a duration) and nice, as the settings' worker_* fields."""
    unknown = set(raw) - {"partitions", "lease", "nice"}
    if unknown:
        raise ConfigError(f"unknown [worker] settings: {', '.join(sorted(unknown))}")
    found = {f"worker_{name}": value for name, value in raw.items()}
    for name in ("worker_partitions", "worker_nice"):
        if name in found and (isinstance(found[name], bool) or not isinstance(found[name], int)):
            raise ConfigError(f"[worker] {name.removeprefix('worker_')} must be a whole number, not {found[name]!r}")
    return found
