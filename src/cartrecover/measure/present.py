"""The report as JSON (money in minor units beside display strings) and as a table for people."""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from typing import Any

from cartrecover.domain.money import to_major
from cartrecover.measure.report import GroupFigures, Report, Row, VariantFigures
from cartrecover.measure.statistics import Interval


def as_json(report: Report) -> dict[str, Any]:
    """A JSON-ready dict; every amount is `<name>` (minor units) with `<name>_display` (decimal text)."""
    cur = report.currency
    money = _money(cur)
    inc = report.incremental
    incremental: dict[str, Any] | None = None
    if inc is not None:
        incremental = {
            "recovery_rate": _interval(inc.recovery_rate),
            "revenue_per_cart": _interval(inc.revenue_per_cart),
            **money("revenue", inc.revenue),
            **money("revenue_low", inc.revenue_low),
            **money("revenue_high", inc.revenue_high),
            "confidence": 0.95,
        }
    return {
        "store_id": report.store_id,
        "currency": cur,
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "abandoned": {"carts": report.abandoned, **money("value", report.abandoned_value)},
        "treated": _group(report.treated, cur),
        "holdout": _group(report.holdout, cur),
        "incremental": incremental,
        "not_enough_data": report.not_enough_data,
        **money("incentive_cost", report.incentive_cost),
        **money("channel_cost", report.channel_cost),
        **money("net_incremental_revenue", report.net_incremental_revenue),
        "roi": _ratio(report.roi),
        "last_touch": {
            "orders": report.attributed_orders,
            **money("revenue", report.attributed_revenue),
        },
        "channels": [_row(r, cur) for r in report.channels],
        "steps": [_row(r, cur) for r in report.steps],
        "incentives": [_row(r, cur) for r in report.incentives],
        "variants": [_variant(v, cur) for v in report.variants],
    }


def as_table(report: Report) -> str:
    """A readable summary: the groups, the incremental figures, costs, then the breakdowns."""
    cur = report.currency
    show = _show(cur)
    lines = [
        f"Recovery report, store {report.store_id}, carts abandoned {report.since:%Y-%m-%d %H:%M} – "
        f"{report.until:%Y-%m-%d %H:%M} UTC ({cur})",
        f"Abandoned carts: {report.abandoned} worth {show(report.abandoned_value)}",
        "",
        f"{'group':<10}{'carts':>8}{'recovered':>11}{'rate':>9}{'revenue':>14}",
    ]
    for name, group in (("treated", report.treated), ("holdout", report.holdout)):
        rate = "–" if group.rate is None else f"{group.rate:.1%}"
        lines.append(f"{name:<10}{group.carts:>8}{group.recovered:>11}{rate:>9}{show(group.revenue):>14}")
    lines.append("")
    inc = report.incremental
    if inc is None:
        lines.append(f"Incremental: {report.not_enough_data}")
    else:
        rr = inc.recovery_rate
        lines.append(f"Incremental recovery rate: {rr.estimate:+.1%} (95 % CI {_pct(rr.low)} to {_pct(rr.high)})")
        lines.append(
            f"Incremental revenue: {show(inc.revenue)} (95 % CI {show(inc.revenue_low)} to {show(inc.revenue_high)})"
        )
    lines += [
        f"Incentive cost: {show(report.incentive_cost)}   Channel cost: {show(report.channel_cost)}",
        f"Net incremental revenue: {show(report.net_incremental_revenue)}   ROI: {_ratio(report.roi) or '–'}",
        f"Last touch: {report.attributed_orders} orders, {show(report.attributed_revenue)}",
    ]
    for title, rows in (("channel", report.channels), ("step", report.steps), ("incentive", report.incentives)):
        if rows:
            width = max(18, *(len(r.key) + 2 for r in rows))  # whole names: a learned plan's steps differ at the end
            lines += [
                "",
                f"{title:<{width}}{'sends':>7}{'clicks':>8}{'orders':>8}{'revenue':>14}{'incentive':>12}{'channel':>10}",
            ]
            lines += [
                f"{r.key:<{width}}{r.sends:>7}{r.clicks:>8}{r.orders:>8}{show(r.revenue):>14}"
                f"{show(r.incentive_cost):>12}{show(r.channel_cost):>10}"
                for r in rows
            ]
    if report.variants:
        lines += [
            "",
            f"{'experiment / variant':<28}{'carts':>7}{'recovered':>11}{'rate':>8}{'revenue':>14}"
            f"{'lift vs holdout (95 % CI)':>30}{'P(best)':>9}",
        ]
        lines += [_variant_line(v, show) for v in report.variants]
    return "\n".join(lines) + "\n"


def _variant_line(v: VariantFigures, show: Any) -> str:
    rate = "–" if v.rate is None else f"{v.rate:.1%}"
    lift = "–" if v.lift is None else f"{v.lift.estimate:+.1%} ({_pct(v.lift.low)} to {_pct(v.lift.high)})"
    name = f"{v.experiment} / {v.variant}"[:27]
    return f"{name:<28}{v.carts:>7}{v.recovered:>11}{rate:>8}{show(v.revenue):>14}{lift:>30}{v.probability_best:>9.3f}"


def _variant(v: VariantFigures, cur: str) -> dict[str, Any]:
    return {
        "experiment": v.experiment,
        "variant": v.variant,
        "carts": v.carts,
        "recovered": v.recovered,
        "recovery_rate": v.rate,
        **_money(cur)("revenue", v.revenue),
        "lift": None if v.lift is None else _interval(v.lift),
        "probability_best": v.probability_best,
    }


def _money(cur: str) -> Any:
    def money(name: str, minor: int | None) -> dict[str, Any]:
        return {name: minor, f"{name}_display": None if minor is None else str(to_major(minor, cur))}

    return money


def _show(cur: str) -> Any:
    def show(minor: int | None) -> str:
        return "–" if minor is None else f"{to_major(minor, cur):,}"

    return show


def _group(group: GroupFigures, cur: str) -> dict[str, Any]:
    return {
        "carts": group.carts,
        "recovered": group.recovered,
        "recovery_rate": group.rate,
        **_money(cur)("revenue", group.revenue),
    }


def _row(row: Row, cur: str) -> dict[str, Any]:
    money = _money(cur)
    return {
        **{k: v for k, v in asdict(row).items() if k not in ("revenue", "incentive_cost", "channel_cost")},
        **money("revenue", row.revenue),
        **money("incentive_cost", row.incentive_cost),
        **money("channel_cost", row.channel_cost),
    }


def _interval(interval: Interval) -> dict[str, float | None]:
    return {"estimate": interval.estimate, "low": interval.low, "high": interval.high}


def _ratio(value: Fraction | None) -> str | None:
    return None if value is None else f"{float(value):.4f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"
