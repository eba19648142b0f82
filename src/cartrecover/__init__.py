"""cartrecover: win back abandoned carts, and prove what it earned."""

from cartrecover.domain.cart import AbandonmentRules, Cart, CartStatus
from cartrecover.domain.events import Event, EventKind, LineItem
from cartrecover.errors import CartRecoverError
from cartrecover.settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "AbandonmentRules",
    "Cart",
    "CartRecoverError",
    "CartStatus",
    "Event",
    "EventKind",
    "LineItem",
    "Settings",
    "__version__",
    "load_settings",
]
