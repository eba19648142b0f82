"""The simulator's truth next to the engine's report, both defined the same way.

The report (`GET /api/v1/reports/recovery`) estimates incremental revenue as (treated − holdout revenue per
abandoned cart) × treated carts, where a cart's revenue is the total of the order that recovered it (as sent in
`Order Completed`, so after any discount), placed after its abandonment and inside the recovery window. Its target
is the sum, over the treated carts, of what each cart's order brought minus what it would have brought with no
contact. The simulator knows both worlds for every shopper, so it computes that sum exactly:

    truth = Σ over treated carts of (order total if they ordered − cart value if they would have ordered anyway)

(an order with no contact uses no code from a message, so its total is the cart's value). A discount given to a
shopper who would have bought anyway is a loss, and counts as one. Holdout carts are never contacted, so their
two worlds are the same; `tally` checks that they are.

Beside it, the realised net incremental profit of the treated carts, with the store's margin and message costs:

    profit = Σ over treated carts of (value × margin − discount, if they ordered
                                      − value × margin, if they would have ordered anyway
                                      − the cost of the messages they got)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outcome", "compare", "mismatches", "print_summary", "tally"]

NOT_RECOVERED = ("abandoned", "recovering", "expired")  # an unbought cart's status, by how far its journey got


@dataclass
class Outcome:
    """What happened to one abandoned cart in the simulation, and what would have without contact."""

    cart_id: str
    value: int  # the cart's value, and the total of the order the shopper would have placed with no contact
    counterfactual: bool  # would have ordered with no contact
    contacted: int = 0  # messages received
    clicked: int = 0
    ordered: bool = False
    total: int = 0  # the order's total as sent in `Order Completed` (value − discount), 0 without an order
    via_click: bool = False
    discount: int = 0
    stopped: bool = False
    coupon: str | None = None
    messages: dict[str, int] = field(default_factory=dict)  # received, by channel

    @property
    def incremental(self) -> int:
        """What contact changed for this cart: its order total minus its no-contact order total."""
        return self.total - self.value * self.counterfactual

    def message_cost(self, channel_costs: Mapping[str, float]) -> float:
        """What the messages it got cost, minor units (`channel_costs` per message in major units)."""
        return sum(count * channel_costs.get(channel, 0.0) * 100 for channel, count in self.messages.items())

    def incremental_profit(self, margin: float, channel_costs: Mapping[str, float]) -> float:
        """What contact changed for this cart's profit (value × margin − discount per order), minus message costs."""
        with_contact = (self.value * margin - self.discount) * self.ordered
        return with_contact - self.value * margin * self.counterfactual - self.message_cost(channel_costs)


def tally(
    outcomes: Iterable[Outcome],
    carts: Mapping[str, Mapping[str, Any]],
    report: Mapping[str, Any],
    *,
    margin: float = 0.35,
    channel_costs: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Counts per group (the engine's group of each cart), the truth, and the report's estimate beside it."""
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    truth, profit, cost = 0, 0.0, 0.0
    for outcome in outcomes:
        cart = carts.get(outcome.cart_id, {})
        group = str(cart.get("group") or "unknown")
        row = groups[group]
        row["abandoned"] += 1
        row["engine_abandoned"] += bool(cart.get("abandoned_at"))
        row["contacted"] += outcome.contacted > 0
        row["clicked"] += outcome.clicked > 0
        row["recovered"] += outcome.ordered
        row["engine_recovered"] += cart.get("status") == "recovered"
        row["revenue"] += outcome.total
        row["counterfactual_revenue"] += outcome.value * outcome.counterfactual
        row["discount"] += outcome.discount
        row["stopped"] += outcome.stopped
        row["messages"] += outcome.contacted
        if group == "treated":
            truth += outcome.incremental
            profit += outcome.incremental_profit(margin, channel_costs or {})
            cost += outcome.message_cost(channel_costs or {})
    for name in ("treated", "holdout"):
        if name in groups and isinstance(report.get(name), Mapping):
            groups[name]["report_carts"] = report[name]["carts"]
            groups[name]["report_recovered"] = report[name]["recovered"]
            groups[name]["report_revenue"] = report[name]["revenue"]
    return {
        "groups": {name: dict(row) for name, row in sorted(groups.items())},
        "true_incremental_revenue": truth,
        "true_incremental_profit": profit,
        "discount_spend": groups["treated"]["discount"] if "treated" in groups else 0,
        "message_cost": cost,
        "estimate": compare(truth, report),
    }


def compare(truth: int, report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's incremental revenue and 95 % interval, and whether `truth` lies inside (None: no interval)."""
    incremental = report.get("incremental")
    if not isinstance(incremental, Mapping):
        return {"revenue": None, "low": None, "high": None, "inside": None, "why": report.get("not_enough_data")}
    low, high = incremental["revenue_low"], incremental["revenue_high"]
    inside = None if low is None or high is None else low <= truth <= high
    return {"revenue": incremental["revenue"], "low": low, "high": high, "inside": inside, "why": None}


def mismatches(
    visits: Iterable[tuple[str, bool]], outcomes: Mapping[str, Outcome], carts: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """Carts whose engine status is not the one their traffic implies, as (cart, expected, found).

    `visits` are (cart id, abandoned) for every visit that filled a cart: one bought at once is converted; an
    abandoned one is recovered exactly when the simulated shopper ordered, and otherwise still abandoned,
    recovering or expired; a holdout cart never gets a message.
    """
    found: list[tuple[str, str, str]] = []
    for cart_id, abandoned in visits:
        cart = carts.get(cart_id, {})
        status = str(cart.get("status", "missing"))
        outcome = outcomes.get(cart_id)
        if not abandoned or outcome is None:
            expected = "converted" if not abandoned else "abandoned"
            ok = status == expected
        elif outcome.ordered:
            expected, ok = "recovered", status == "recovered"
        else:
            expected, ok = "not recovered", status in NOT_RECOVERED
        if cart.get("group") == "holdout" and outcome is not None and outcome.contacted:
            expected, status, ok = "holdout: no message", f"{outcome.contacted} message(s)", False
        if not ok:
            found.append((cart_id, expected, status))
    return found


def print_summary(summary: Mapping[str, Any], *, funnel: bool = True) -> None:
    """The funnel per group (optional), then the true incremental revenue next to the report's estimate."""
    money = _money(summary.get("currency", ""))
    if funnel:
        columns = ("abandoned", "contacted", "clicked", "recovered", "revenue", "no-contact revenue", "discount")
        keys = dict(zip(columns, columns, strict=True)) | {"no-contact revenue": "counterfactual_revenue"}
        print(f"\n{'group':<10}" + "".join(f"{name:>20}" for name in columns))
        for name, row in summary["groups"].items():
            cells = [
                f"{money(row.get(keys[c], 0)):>20}" if "revenue" in c or c == "discount" else f"{row.get(c, 0):>20}"
                for c in columns
            ]
            print(f"{name:<10}" + "".join(cells))
    for line in comparison_lines(summary):
        print(line)


def comparison_lines(summary: Mapping[str, Any]) -> list[str]:
    """The truth, the report's estimate with its interval and whether the truth is inside, then the true profit."""
    money = _money(summary.get("currency", ""))
    estimate = summary["estimate"]
    treated = summary["groups"].get("treated", {})
    lines = [
        "",
        f"TRUE incremental revenue:     {money(summary['true_incremental_revenue']):>12}   "
        f"(the {treated.get('abandoned', 0)} treated carts: order totals minus what they would have spent "
        "with no contact)",
    ]
    if estimate["revenue"] is None:
        lines.append(f"the engine's report has no incremental figure: {estimate['why']}")
    else:
        interval = f"95 % interval {money(estimate['low'])} to {money(estimate['high'])}"
        verdict = {True: "the truth is INSIDE it", False: "the truth is OUTSIDE it", None: "no interval"}
        lines += [
            f"the engine's estimate:        {money(estimate['revenue']):>12}   "
            f"(GET /api/v1/reports/recovery: treated − holdout revenue per cart × treated carts)",
            f"                              {interval}: {verdict[estimate['inside']]}",
        ]
    if "true_incremental_profit" not in summary:
        return lines
    return [
        *lines,
        f"TRUE incremental profit:      {money(round(summary['true_incremental_profit'])):>12}   "
        f"(margin {summary.get('margin', 0):.0%}: value × margin − discount of each order, minus the no-contact "
        "orders' value × margin and the messages' cost)",
        f"discounts given:              {money(summary['discount_spend']):>12}   "
        f"(messages' cost {money(round(summary['message_cost']))})",
    ]


def _money(currency: str) -> Any:
    def show(minor: int | None) -> str:
        return "–" if minor is None else f"{minor / 100:,.2f}" + (f" {currency}" if currency else "")

    return show
