"""Platform webhooks: Shopify and WooCommerce (filled in below)."""

from __future__ import annotations

ROUTES: list[object] = []
