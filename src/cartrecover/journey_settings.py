"""The `[journey]`, `[guardrails]` and `[channels]` sections of `cartrecover.toml`.

[[journey.steps]]
name = "last-chance"
delay = "72h"
channels = ["sms", "email"]        # the first the shopper consented to and can be reached on
template = "incentive"
incentive = { percent = 10, min_cart_value = "100.00", valid_for = "72h" }   # value in the store's currency

[guardrails]
quiet_hours = { sms = ["09:00", "20:00"] }   # when each channel may send, in the shopper's time zone
caps = [[2, "24h"], [4, "7d"]]               # at most N messages per shopper in any window, all channels
max_discount_percent = 30
require_consent = true
require_ads_consent = true                   # ad audiences: only shoppers with consent for ads

[channels]
email = "console"                            # or smtp://user:password@host:587?starttls=true&from=…
sms = "console"                              # or twilio://ACCOUNT_SID:AUTH_TOKEN@host?from=+1…

[measure]
attribution_windows = { email = "5d", push = "24h", sms = "24h", onsite = "24h" }   # last-touch windows
channel_cost = { email = "0.001", sms = "0.0079" }  # per message sent, in the store's currency
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cartrecover.domain.journey import DEFAULT_JOURNEY, Channel, Guardrails, Incentive, Journey, JourneyStep
from cartrecover.domain.money import to_minor
from cartrecover.errors import ConfigError

DEFAULT_CHANNELS = {"email": "console", "sms": "console", "push": "console", "onsite": "null"}


@dataclass(frozen=True)
class StepConfig:
    """A journey step as configured: the incentive's minimum cart value in major units of each store's currency."""

    step: JourneyStep
    min_cart_value: Decimal | None = None


@dataclass(frozen=True)
class JourneyConfig:
    """The journey every store runs (until a store has its own)."""

    steps: tuple[StepConfig, ...]

    def for_currency(self, currency: str) -> Journey:
        """The journey with incentive thresholds in the currency's minor units."""
        steps = []
        for configured in self.steps:
            step, incentive = configured.step, configured.step.incentive
            if incentive is not None and configured.min_cart_value is not None:
                minor = to_minor(configured.min_cart_value, currency)
                step = JourneyStep(
                    step.name,
                    step.delay,
                    step.channels,
                    step.template,
                    Incentive(incentive.percent, minor, incentive.valid_for),
                )
            steps.append(step)
        return Journey(tuple(steps))


DEFAULT_JOURNEY_CONFIG = JourneyConfig(
    tuple(StepConfig(step, Decimal("100") if step.incentive is not None else None) for step in DEFAULT_JOURNEY.steps)
)


def parse_journey(raw: dict[str, Any], duration: Any) -> JourneyConfig:
    """`[journey]`, or the default journey when absent."""
    steps = raw.get("steps")
    if not steps:
        return DEFAULT_JOURNEY_CONFIG
    return JourneyConfig(tuple(_step(entry, duration) for entry in steps))


def _step(entry: dict[str, Any], duration: Any) -> StepConfig:
    name = str(entry.get("name", "step"))
    try:
        channels = tuple(Channel(c) for c in entry.get("channels", ["email"]))
    except ValueError as exc:
        raise ConfigError(f"journey step {name}: {exc} (use {', '.join(c.value for c in Channel)})") from exc
    incentive, minimum = None, None
    if isinstance(entry.get("incentive"), dict):
        offer = entry["incentive"]
        try:
            minimum = Decimal(str(offer.get("min_cart_value", "0")))
        except InvalidOperation as exc:
            raise ConfigError(f"journey step {name}: min_cart_value is not a decimal") from exc
        incentive = Incentive(int(offer["percent"]), 0, duration(offer.get("valid_for", "72h")))
    step = JourneyStep(name, duration(entry["delay"]), channels, str(entry.get("template", "reminder")), incentive)
    return StepConfig(step, minimum)


def parse_guardrails(raw: dict[str, Any], duration: Any) -> Guardrails:
    """`[guardrails]`, defaults for what is absent."""
    defaults = Guardrails()
    quiet = defaults.quiet_hours
    if "quiet_hours" in raw:
        try:
            quiet = {
                Channel(k): (time.fromisoformat(v[0]), time.fromisoformat(v[1])) for k, v in raw["quiet_hours"].items()
            }
        except (ValueError, IndexError, TypeError) as exc:
            raise ConfigError(f'guardrails.quiet_hours: {exc} (use e.g. sms = ["09:00", "20:00"])') from exc
    caps = tuple((int(n), duration(w)) for n, w in raw["caps"]) if "caps" in raw else defaults.caps
    return Guardrails(
        quiet_hours=quiet,
        caps=caps,
        max_discount_percent=int(raw.get("max_discount_percent", defaults.max_discount_percent)),
        max_attempts=int(raw.get("max_attempts", defaults.max_attempts)),
        require_consent=bool(raw.get("require_consent", defaults.require_consent)),
        require_ads_consent=bool(raw.get("require_ads_consent", defaults.require_ads_consent)),
    )


def parse_channels(raw: dict[str, Any]) -> dict[str, str]:
    """`[channels]`: channel name → sender URL."""
    unknown = set(raw) - {c.value for c in Channel}
    if unknown:
        raise ConfigError(f"unknown channels: {', '.join(sorted(unknown))}")
    return {**DEFAULT_CHANNELS, **{k: str(v) for k, v in raw.items()}}


DEFAULT_ATTRIBUTION_WINDOWS = {
    "email": timedelta(days=5),
    "push": timedelta(hours=24),
    "sms": timedelta(hours=24),
    "onsite": timedelta(hours=24),
}


@dataclass(frozen=True)
class MeasureConfig:
    """`[measure]`: last-touch windows per channel, and what one message costs per channel (major units)."""

    attribution_windows: dict[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTION_WINDOWS))
    channel_cost: dict[str, Decimal] = field(default_factory=dict)


def parse_measure(raw: dict[str, Any], duration: Any) -> MeasureConfig:
    """`[measure]`, defaults for what is absent; the windows given replace those channels' defaults."""
    unknown = set(raw) - {"attribution_windows", "channel_cost"}
    if unknown:
        raise ConfigError(f"unknown [measure] settings: {', '.join(sorted(unknown))}")
    channels = {c.value for c in Channel}
    windows, costs = dict(raw.get("attribution_windows", {})), dict(raw.get("channel_cost", {}))
    for name, table in (("attribution_windows", windows), ("channel_cost", costs)):
        if set(table) - channels:
            raise ConfigError(f"measure.{name}: unknown channels {', '.join(sorted(set(table) - channels))}")
    parsed_costs = {}
    for channel, cost in costs.items():
        try:
            parsed_costs[channel] = Decimal(str(cost))
        except InvalidOperation as exc:
            raise ConfigError(f"measure.channel_cost.{channel}: not a decimal amount: {cost!r}") from exc
        if not parsed_costs[channel].is_finite() or parsed_costs[channel] < 0:
            raise ConfigError(f"measure.channel_cost.{channel}: must be an amount of 0 or more, not {cost!r}")
    return MeasureConfig(
        attribution_windows={**DEFAULT_ATTRIBUTION_WINDOWS, **{k: duration(v) for k, v in windows.items()}},
        channel_cost=parsed_costs,
    )


def minutes(value: timedelta) -> float:
    """A duration in minutes (for messages)."""
    return value.total_seconds() / 60
