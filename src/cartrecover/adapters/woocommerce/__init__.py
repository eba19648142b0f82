"""WooCommerce's REST API: coupons for recovery messages."""

from cartrecover.adapters.woocommerce.coupons import WooCommerceCoupons

__all__ = ["WooCommerceCoupons"]
