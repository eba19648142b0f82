"""Shopify's Admin GraphQL API: discount codes for recovery messages."""

from cartrecover.adapters.shopify.coupons import ShopifyCoupons

__all__ = ["ShopifyCoupons"]
