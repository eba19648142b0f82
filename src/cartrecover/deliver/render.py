"""Messages from Jinja2 templates in a sandboxed, autoescaping environment.

Templates are looked up first in the store's own folder (if configured) and then in the package's; each
template name has a `.subject`, `.html`, `.txt` and `.sms` form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from cartrecover.domain.journey import Channel
from cartrecover.domain.links import LinkSigner
from cartrecover.domain.money import to_major
from cartrecover.ports.channels import OutboundMessage
from cartrecover.ports.outbox import Claim


@dataclass(frozen=True)
class Brand:
    """What messages say about the store."""

    name: str
    currency: str
    sender: str = ""  # the From address of its email


UNSUBSCRIBE_VALID_FOR = timedelta(days=365)


class Renderer:
    """Renders a claim into the message its channel sends, with signed restore and unsubscribe links."""

    def __init__(self, signer: LinkSigner, public_url: str, templates: Path | None = None) -> None:
        loaders: list[Any] = [PackageLoader("cartrecover.deliver", "templates")]
        if templates is not None:
            loaders.insert(0, FileSystemLoader(str(templates)))
        self._env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            # Template files are named `*.html.j2`: "html" alone would never match them and leave HTML unescaped.
            autoescape=select_autoescape(
                enabled_extensions=("html.j2", "html"), default_for_string=False, default=False
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._signer = signer
        self._base = public_url.rstrip("/")

    def render(self, claim: Claim, brand: Brand, expires: datetime) -> OutboundMessage:
        """The message for the claimed step on its chosen channel."""
        step = claim.step
        assert step.channel is not None, "render claimed steps only"
        context = self.context(claim, brand, expires)
        name = step.template
        subject = self._render(f"{name}.subject", context).strip()
        if step.channel is Channel.EMAIL:
            html, text = self._render(f"{name}.html", context), self._render(f"{name}.txt", context)
            headers = {
                "Message-ID": step.message_id,
                "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        else:
            html, text, headers = None, self._render(f"{name}.sms", context).strip(), {}
        return OutboundMessage(
            message_id=step.message_id,
            channel=step.channel.value,
            to=claim.address,
            subject=subject,
            text=text,
            html=html,
            headers=headers,
            store_id=step.store_id,
            step_id=step.step_id,
        )

    def context(self, claim: Claim, brand: Brand, expires: datetime) -> dict[str, Any]:
        """The variables templates see."""
        step, cart = claim.step, claim.cart
        channel = step.channel.value if step.channel else ""
        currency = cart.currency or brand.currency
        link = self._signer.token
        unsubscribe = expires + UNSUBSCRIBE_VALID_FOR  # an opt-out must work long after the offer is gone
        return {
            "store": brand.name,
            "items": [
                {
                    "name": item.name or item.product_id,
                    "quantity": item.quantity,
                    "price": f"{to_major(item.price, currency)} {currency}" if item.price is not None else "",
                    "image_url": item.image_url,
                    "url": item.url,
                }
                for item in cart.items
            ],
            "total": f"{to_major(cart.value, currency)} {currency}",
            "restore_url": f"{self._base}/r/{link('restore', step.store_id, step.step_id, channel, expires)}",
            "unsubscribe_url": f"{self._base}/u/{link('unsubscribe', step.store_id, step.step_id, channel, unsubscribe)}",
            "coupon": step.coupon,
            "percent": step.incentive.percent if step.incentive else None,
            "coupon_expires": _when(step.coupon_expires) if step.coupon and step.coupon_expires else None,
        }

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return self._env.get_template(f"{name}.j2").render(context)


def _when(at: datetime) -> str:
    """A time as shoppers read it in a message: `8 January 2026, 10:00 UTC`."""
    at = at.astimezone(UTC)
    return f"{at.day} {at:%B %Y, %H:%M} UTC"
