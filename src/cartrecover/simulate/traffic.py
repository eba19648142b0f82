"""A day of shop traffic as Segment calls, with the outcome each cart should reach.

Shoppers arrive through the day (busier in the evening), browse, and some fill a cart. Each cart gets a fate:
bought at once, abandoned, abandoned and bought later on the same device, or bought later on another device
after signing in. The fates are the truth the replay tests check the engine against: an abandoned cart of a shopper who
signed in (with email consent) gets the default journey's first reminder and ends the day recovering.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

CATALOG = [
    (f"sku-{n:03d}", name, Decimal(price))
    for n, (name, price) in enumerate(
        [
            ("Linen shirt", "49.00"),
            ("Wool socks", "12.50"),
            ("Canvas tote", "24.99"),
            ("Rain jacket", "129.00"),
            ("Leather belt", "39.90"),
            ("Merino scarf", "59.00"),
            ("Trail shoes", "119.95"),
            ("Beanie", "19.00"),
            ("Denim jeans", "89.00"),
            ("Sunglasses", "74.50"),
            ("Water bottle", "22.00"),
            ("Backpack", "98.00"),
            ("Cotton tee", "18.00"),
            ("Hoodie", "64.00"),
            ("Gloves", "29.99"),
            ("Umbrella", "27.50"),
        ],
        start=1,
    )
]
FATES = ("converted", "abandoned", "recovered", "recovered_other_device")
_FATE_WEIGHTS = (0.25, 0.45, 0.18, 0.12)


@dataclass
class Day:
    """The calls of one day, in no particular order, and the expected final status of each cart."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fates: dict[str, str] = field(default_factory=dict)
    browsers: int = 0


def generate_day(start: datetime, shoppers: int, seed: int, shop: str = "demo-shop.example") -> Day:
    """Traffic for the 24 hours from `start`."""
    rng = random.Random(seed)
    day = Day()
    for number in range(shoppers):
        arrival = start + timedelta(seconds=int(72_000 * rng.betavariate(2.2, 1.6)))
        visitor = _Visitor(rng, day, shop, number)
        visitor.browse(arrival, pages=rng.randint(1, 5))
        if rng.random() < 0.45:
            day.browsers += 1
            continue
        visitor.shop(start + timedelta(hours=23))
    return day


class _Visitor:
    def __init__(self, rng: random.Random, day: Day, shop: str, number: int) -> None:
        self.rng, self.day, self.domain = rng, day, shop
        self.anonymous_id = self._uuid()
        self.user_id = f"customer-{number:05d}"
        self.email = f"shopper{number:05d}@example.com"
        self.cart_id = f"cart-{number:05d}"
        self.signed_in = False
        self.now = datetime.min
        self.lines: list[dict[str, Any]] = []

    def browse(self, at: datetime, pages: int) -> None:
        self.now = at
        for _ in range(pages):
            self._call("page", name="Product", properties={"path": f"/products/{self.rng.choice(CATALOG)[0]}"})
            self._wait(20, 140)

    def shop(self, closing: datetime) -> None:
        for sku, name, price in self.rng.sample(CATALOG, self.rng.randint(1, 3)):
            self.lines.append(
                {
                    "product_id": sku,
                    "sku": sku,
                    "name": name,
                    "price": float(price),
                    "quantity": self.rng.randint(1, 2),
                    "url": f"https://{self.domain}/products/{sku}",
                    "image_url": f"https://{self.domain}/images/{sku}.jpg",
                }
            )
        self._fill_cart()
        fate = self.rng.choices(FATES, _FATE_WEIGHTS)[0]
        if fate == "converted":
            self.day.fates[self.cart_id] = "converted"
            self._checkout_and_order()
            return
        self.day.fates[self.cart_id] = "abandoned" if fate == "abandoned" else "recovered"
        if fate == "recovered_other_device" or self.rng.random() < 0.5:
            self._identify()
            self._call("track", event="Checkout Started", properties=self._cart_properties())
        if fate == "abandoned":
            # Signed in with consent: the first reminder (an hour after abandonment) goes out, so it is recovering.
            self.day.fates[self.cart_id] = "recovering" if self.signed_in else "abandoned"
            return
        self.now = min(self.now + timedelta(minutes=self.rng.randint(75, 360)), closing)
        if fate == "recovered_other_device":
            # A second device: anonymous until the shopper signs in; its own cart, bought at once.
            self.anonymous_id, self.signed_in = self._uuid(), False
            self.browse(self.now, pages=1)
            self._identify()
            self.cart_id = f"{self.cart_id}-b"
            self.day.fates[self.cart_id] = "converted"
            self._fill_cart()
        else:
            self.browse(self.now, pages=1)
        self._checkout_and_order()

    def _fill_cart(self) -> None:
        for line in self.lines:
            self._call("track", event="Product Added", properties={"cart_id": self.cart_id, **line})
            self._wait(30, 200)

    def _checkout_and_order(self) -> None:
        self._identify()
        self._call("track", event="Checkout Started", properties=self._cart_properties())
        self._wait(60, 400)
        total = float(sum(Decimal(str(line["price"])) * line["quantity"] for line in self.lines))
        order = {**self._cart_properties(), "order_id": f"order-{self.cart_id}", "total": total, "revenue": total}
        self._call("track", event="Order Completed", properties=order)

    def _identify(self) -> None:
        self.signed_in = True
        self._call("identify", traits={"email": self.email, "consent": {"email": True}})

    def _cart_properties(self) -> dict[str, Any]:
        value = sum(Decimal(str(line["price"])) * line["quantity"] for line in self.lines)
        return {"cart_id": self.cart_id, "currency": "USD", "value": float(value), "products": list(self.lines)}

    def _wait(self, low: int, high: int) -> None:
        self.now += timedelta(seconds=self.rng.randint(low, high))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _call(self, kind: str, **fields: Any) -> None:
        call = {
            "type": kind,
            "anonymousId": self.anonymous_id,
            "messageId": self._uuid(),
            "timestamp": self.now.isoformat().replace("+00:00", "Z"),
            "context": {"timezone": "Europe/Berlin"},
            **fields,
        }
        if self.signed_in:
            call["userId"] = self.user_id
        self.day.calls.append(call)
