"""Ad audiences: the abandoners a store may retarget, as SHA-256 of normalised email and E.164 phone.

A shopper is in the audience when one of their carts was abandoned inside the window and is still abandoned
or recovering (a cart that became an order, expired or was erased is not), they consented to ads (unless the
store's guardrails say `require_ads_consent = false`), and at least one of their identifiers is usable and
not suppressed on its channel (a bounced or unsubscribed email, a phone that sent STOP). Nothing leaves in
clear: each row holds hashes only, one row per shopper.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime

from cartrecover.domain.cart import CartStatus
from cartrecover.domain.contact import address_key, hashed_email, hashed_phone
from cartrecover.ports.shoppers import Shopper
from cartrecover.ports.unit_of_work import UnitOfWork

TARGETABLE = (CartStatus.ABANDONED, CartStatus.RECOVERING)
COLUMNS = ("email_sha256", "phone_sha256")


@dataclass(frozen=True)
class Member:
    """One shopper of an audience: SHA-256 hex digests, None where the identifier is missing or not allowed."""

    email_sha256: str | None
    phone_sha256: str | None


def abandoners(
    uow: UnitOfWork, store_id: int, since: datetime, until: datetime, *, require_ads_consent: bool = True
) -> list[Member]:
    """The store's abandoners of carts abandoned in [since, until) who may be targeted, one per shopper."""
    members, seen = [], set()
    for cart in uow.carts.abandoned_between(store_id, since, until, TARGETABLE):
        if cart.shopper_id in seen:
            continue
        seen.add(cart.shopper_id)
        shopper = uow.shoppers.get(store_id, cart.shopper_id)
        if shopper is None or (require_ads_consent and shopper.consent.get("ads") is not True):
            continue
        member = _member(uow, shopper)
        if member.email_sha256 or member.phone_sha256:
            members.append(member)
    return members


def _member(uow: UnitOfWork, shopper: Shopper) -> Member:
    def allowed(channel: str, address: str | None) -> bool:
        if not address:
            return False
        return uow.suppressions.reason(shopper.store_id, channel, address_key(channel, address)) is None

    return Member(
        email_sha256=hashed_email(shopper.email) if allowed("email", shopper.email) else None,
        phone_sha256=hashed_phone(shopper.phone) if allowed("sms", shopper.phone) else None,
    )


def to_csv(members: list[Member]) -> str:
    """A header line, then one row per shopper; an empty cell where there is no hash."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([m.email_sha256 or "", m.phone_sha256 or ""] for m in members)
    return out.getvalue()


def to_json(members: list[Member]) -> list[dict[str, str | None]]:
    """The members as plain objects."""
    return [asdict(m) for m in members]
