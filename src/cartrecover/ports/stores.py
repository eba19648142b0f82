"""Stores (tenants) and their keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Store:
    """A shop that sends events. Keys are secrets: never logged."""

    store_id: int
    name: str
    write_key: str
    admin_key_hash: str
    shopify_secrets: tuple[str, ...] = ()
    woocommerce_secret: str | None = None
    timezone: str = "UTC"
    currency: str = "USD"
    settings: dict[str, object] = field(default_factory=dict)
    restore_url: str = ""  # pattern for carts without their own restore URL: "https://shop.example/cart/{cart_id}"
    coupon_style: str = ""  # how a coupon joins a restore URL: "shopify" (/discount/CODE), "query", "" (by host)


class Stores(Protocol):
    """The registry of stores."""

    def add(self, store: Store) -> Store:
        """Create a store; its id is assigned here. Raises StoreExists for a taken name."""
        ...

    def update(self, store: Store) -> None:
        """Replace a store's keys and settings."""
        ...

    def by_name(self, name: str) -> Store | None:
        """The store with this name."""
        ...

    def all(self) -> list[Store]:
        """Every store, by id."""
        ...
