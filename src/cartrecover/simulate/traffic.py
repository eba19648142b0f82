"""Shop traffic as Segment calls: the simulator's visits, and a day of traffic with the outcome each cart should reach.

`make_visit` plays one visitor of a simulated store (shoppers.StoreProfile): their device (a real browser's
User-Agent), the campaign that brought them, the pages they browse and how long they stay, the cart they fill,
the codes they try, whether they sign in — as a new or a returning customer — and whether they check out or leave.
What a shop could see of it is kept as the visit's `Signals`, which the hidden response model reads.

`generate_day` is simpler traffic for the replay tests: shoppers arrive through the day (busier in the evening),
browse, and some fill a cart. Each cart gets a fate: bought at once, abandoned, abandoned and bought later on the
same device, or bought later on another device after signing in. The fates are the truth the replay tests check
the engine against: an abandoned cart of a shopper who signed in (with email consent) gets the default journey's
first reminder and ends the day recovering.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cartrecover.simulate.shoppers import SOURCES, Signals, StoreProfile

__all__ = ["Customer", "Day", "Visit", "generate_day", "lognormal_prices", "make_visit"]

# Browsers as they name themselves: phones (iPhone, Android) and desktops (Windows and Mac; Chrome and Firefox).
USER_AGENTS = {
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/123.0.0.0 Mobile Safari/537.36",
    ),
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
}
_CODES = ("WELCOME10", "SAVE20", "FREESHIP", "VIP15", "SPRING25")  # what deal sites list; this shop refuses them

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
        agents = USER_AGENTS["mobile"] + USER_AGENTS["desktop"]
        self.user_agent = agents[number % len(agents)]  # not drawn: the day's random stream stays as it was

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
            "context": {"timezone": "Europe/Berlin", "userAgent": self.user_agent},
            **fields,
        }
        if self.signed_in:
            call["userId"] = self.user_id
        self.day.calls.append(call)


def lognormal_prices(rng: random.Random, count: int, median: float, sigma: float) -> list[int]:
    """A catalogue's prices in minor units, rounded to .99 or .50 endings like real shops."""
    prices = []
    for _ in range(count):
        major = max(math.floor(median * math.exp(rng.gauss(0, sigma))), 1)
        prices.append(major * 100 + rng.choice((0, 50, 99)))
    return prices


@dataclass(frozen=True)
class Customer:
    """A signed-in visitor who ordered: who a returning customer signs in as."""

    user_id: str
    email: str | None
    phone: str | None


@dataclass
class Visit:
    """One visitor's session as Segment calls, and what the simulator needs to play their part later."""

    number: int
    anonymous_id: str
    timezone: str
    user_agent: str = USER_AGENTS["desktop"][0]
    campaign: dict[str, str] | None = None  # Segment's `context.campaign` (UTM), None for direct traffic
    signals: Signals = field(default_factory=Signals)
    calls: list[dict[str, Any]] = field(default_factory=list)
    cart_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    value: int = 0
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    left_at: datetime | None = None  # when they left a filled cart unbought
    quick_abandon: bool = False  # checkout started with a contact: the engine waits less before abandoning
    sent: int = 0  # calls made so far, for unique message ids

    @property
    def channels(self) -> frozenset[str]:
        """The channels the engine may reach them on: an address given with consent."""
        return frozenset(name for name, address in (("email", self.email), ("sms", self.phone)) if address)

    def call(self, kind: str, at: datetime, **fields_: Any) -> None:
        """Append a Segment call at `at`, as this visitor's browser would make it."""
        context: dict[str, Any] = {"timezone": self.timezone, "userAgent": self.user_agent}
        if self.campaign:
            context["campaign"] = dict(self.campaign)
        call: dict[str, Any] = {
            "type": kind,
            "anonymousId": self.anonymous_id,
            "messageId": f"sim-{self.number}-{self.sent}",
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "context": context,
            **fields_,
        }
        if self.user_id:
            call["userId"] = self.user_id
        self.calls.append(call)
        self.sent += 1

    def order(self, at: datetime, currency: str, coupon: str | None = None, discount: int = 0) -> None:
        """`Order Completed` for the whole cart, with the coupon and its discount when one is used."""
        total = self.value - discount
        properties: dict[str, Any] = {
            "order_id": f"order-{self.cart_id}",
            "cart_id": self.cart_id,
            "currency": currency,
            "total": total / 100,
            "revenue": total / 100,
            "products": self.lines,
        }
        if coupon:
            properties |= {"coupon": coupon, "discount": discount / 100}
        self.call("track", at, event="Order Completed", properties=properties)


def make_visit(
    profile: StoreProfile,
    rng: random.Random,
    number: int,
    arrival: datetime,
    prices: list[int],
    *,
    customers: list[Customer] | None = None,
) -> Visit:
    """A visitor arriving at `arrival`: pages, maybe a cart and codes tried, a sign-in, an order at once or not.

    A visitor who signs in may be one of `customers` coming back (taken out of the list: each returns once).
    """
    zones, shares = zip(*profile.timezones.items(), strict=True)
    zone = rng.choices(zones, shares)[0]
    device = "mobile" if rng.random() < profile.mobile_share else "desktop"
    names, weights = zip(*profile.sources.items(), strict=True)
    source = rng.choices(names, weights)[0]
    brief = rng.random() < profile.brief_share
    visit = Visit(number, f"anon-{number}", zone, rng.choice(USER_AGENTS[device]), SOURCES[source])
    visit.signals = Signals(device, source, brief=brief)
    now = arrival
    for _ in range(1 if brief else rng.randint(1, 5)):
        visit.call("page", now, name="Product", properties={"path": f"/products/p{rng.randrange(len(prices))}"})
        now += timedelta(seconds=rng.randint(5, 40) if brief else rng.randint(15, 150))
    if rng.random() >= profile.cart_share:
        return visit
    now = _fill_cart(visit, profile, rng, now, prices, brief=brief)
    tries = rng.randint(1, 2) if rng.random() < profile.coupon_share.get(source, 0.0) else 0
    for _ in range(tries):
        now = _try_code(visit, rng, now)
    buys_now = rng.random() < profile.buy_now_share
    returning = checkout = False
    if buys_now or rng.random() < profile.sign_in_share:
        returning = _sign_in(visit, profile, rng, now, customers or [])
        now += timedelta(seconds=rng.randint(10, 60))
        if buys_now or rng.random() < profile.checkout_share:
            cart = {"cart_id": visit.cart_id, "currency": profile.currency, "value": visit.value / 100}
            visit.call("track", now, event="Checkout Started", properties={**cart, "products": visit.lines})
            visit.quick_abandon = visit.email is not None or visit.phone is not None
            checkout = True
            now += timedelta(seconds=rng.randint(30, 300))
    visit.signals = Signals(device, source, tries, brief, returning, checkout)
    if buys_now:
        visit.order(now, profile.currency)
    else:
        visit.left_at = now
    return visit


def _fill_cart(
    visit: Visit, profile: StoreProfile, rng: random.Random, now: datetime, prices: list[int], *, brief: bool
) -> datetime:
    """Products added; a long session looks at another product between them, and at the cart afterwards."""
    visit.cart_id = f"cart-{visit.number}"
    size = rng.choices(range(1, len(profile.cart_sizes) + 1), profile.cart_sizes)[0]
    for index, product in enumerate(rng.sample(range(len(prices)), min(size, len(prices)))):
        if index and not brief:
            visit.call("page", now, name="Product", properties={"path": f"/products/p{product}"})
            now += timedelta(seconds=rng.randint(15, 150))
        line = {"product_id": f"p{product}", "name": f"Product {product}", "price": prices[product] / 100}
        visit.lines.append({**line, "quantity": 1})
        visit.value += prices[product]
        visit.call("track", now, event="Product Added", properties={"cart_id": visit.cart_id, **line, "quantity": 1})
        now += timedelta(seconds=rng.randint(5, 40) if brief else rng.randint(20, 240))
    for _ in range(0 if brief else rng.randint(0, 3)):
        visit.call("page", now, name="Cart", properties={"path": f"/cart/{visit.cart_id}"})
        now += timedelta(seconds=rng.randint(15, 150))
    return now


def _try_code(visit: Visit, rng: random.Random, now: datetime) -> datetime:
    """`Coupon Entered` then `Coupon Denied` (Segment's e-commerce spec): a code from a deal site, refused."""
    code = rng.choice(_CODES)
    coupon = {"cart_id": visit.cart_id, "coupon_id": code.lower(), "coupon_name": code}
    visit.call("track", now, event="Coupon Entered", properties=coupon)
    now += timedelta(seconds=rng.randint(2, 8))
    visit.call("track", now, event="Coupon Denied", properties={**coupon, "reason": "code not valid"})
    return now + timedelta(seconds=rng.randint(10, 60))


def _sign_in(visit: Visit, profile: StoreProfile, rng: random.Random, at: datetime, customers: list[Customer]) -> bool:
    """Identify with consent, as a new customer or as one of `customers` coming back; True when coming back."""
    if customers and rng.random() < profile.returning_share:
        customer = customers.pop(rng.randrange(len(customers)))
        visit.user_id, visit.email, visit.phone = customer.user_id, customer.email, customer.phone
    else:
        visit.user_id = f"user-{visit.number}"
        email, sms = rng.random() < profile.email_consent_share, rng.random() < profile.sms_consent_share
        visit.email = f"shopper{visit.number}@sim.example" if email else None
        visit.phone = f"+1555{visit.number:07d}" if sms else None
    traits: dict[str, Any] = {"consent": {"email": visit.email is not None, "sms": visit.phone is not None}}
    traits |= {name: address for name, address in (("email", visit.email), ("phone", visit.phone)) if address}
    visit.call("identify", at, traits=traits)
    return visit.user_id != f"user-{visit.number}"
