"""The cart state machine on its own: every transition and every refusal, on event time, no database."""

from __future__ import annotations

from datetime import timedelta

from cartrecover.domain.cart import AbandonmentRules, Cart, CartStatus
from cartrecover.domain.events import CartChange
from tests.conftest import START
from tests.factories import (
    MINUTE,
    cart,
    cart_viewed,
    checkout_started,
    event,
    item,
    page_viewed,
    product_added,
    product_removed,
    random_id,
)

RULES = AbandonmentRules()
IDLE, QUICK, WINDOW = RULES.idle, RULES.checkout_idle, RULES.recovery_window


def abandoned_cart(**fields: object) -> Cart:
    """A cart that went idle at START and was abandoned at START + idle."""
    c = cart(**fields)  # type: ignore[arg-type]
    c.mark_abandoned(START + IDLE, RULES)
    assert c.status is CartStatus.ABANDONED
    return c


# --- abandonment -------------------------------------------------------------------------------------------


def test_an_idle_cart_with_items_is_abandoned_when_the_idle_time_is_over() -> None:
    c = cart()

    changes = c.mark_abandoned(START + IDLE, RULES)

    assert c.status is CartStatus.ABANDONED
    assert c.abandoned_at == START + IDLE
    assert [(ch.before, ch.after, ch.at, ch.reason) for ch in changes] == [
        (CartStatus.ACTIVE, CartStatus.ABANDONED, START + IDLE, "idle")
    ]
    assert c.closed_at is None


def test_a_cart_is_not_abandoned_before_its_idle_time_is_over() -> None:
    c = cart()

    assert c.mark_abandoned(START + IDLE - timedelta(microseconds=1), RULES) == []
    assert c.status is CartStatus.ACTIVE
    assert c.abandoned_at is None


def test_an_empty_cart_is_never_abandoned() -> None:
    c = cart(items=())

    assert c.mark_abandoned(START + IDLE, RULES) == []
    assert c.catch_up(START + WINDOW * 2, RULES) == []
    assert c.status is CartStatus.ACTIVE


def test_a_started_checkout_with_a_contact_is_abandoned_after_the_shorter_checkout_idle_time() -> None:
    c = cart()
    c.record_activity(checkout_started(at=START, email="a@example.com"))

    assert c.abandon_due(RULES) == START + QUICK
    assert [ch.after for ch in c.mark_abandoned(START + QUICK, RULES)] == [CartStatus.ABANDONED]


def test_a_started_checkout_without_a_contact_waits_the_full_idle_time() -> None:
    c = cart()
    c.record_activity(checkout_started(at=START))

    assert c.checkout_started and not c.has_contact
    assert c.abandon_due(RULES) == START + IDLE
    assert c.mark_abandoned(START + QUICK, RULES) == []


def test_a_contact_without_a_checkout_waits_the_full_idle_time() -> None:
    c = cart()
    c.record_activity(product_added(at=START, email="a@example.com"))

    assert c.has_contact and not c.checkout_started
    assert c.abandon_due(RULES) == START + IDLE


def test_the_idle_time_counts_from_the_last_activity() -> None:
    c = cart()
    c.record_activity(product_added(at=START + 20 * MINUTE))

    assert c.abandon_due(RULES) == START + 20 * MINUTE + IDLE
    assert c.mark_abandoned(START + IDLE, RULES) == []
    assert c.status is CartStatus.ACTIVE


def test_an_abandoned_cart_is_not_abandoned_twice() -> None:
    c = abandoned_cart()

    assert c.mark_abandoned(START + 2 * IDLE, RULES) == []
    assert c.abandoned_at == START + IDLE


# --- the shopper comes back --------------------------------------------------------------------------------


def test_an_abandoned_cart_becomes_active_when_the_shopper_comes_back() -> None:
    c = abandoned_cart()
    back = START + IDLE + 5 * MINUTE

    changes = c.record_presence(back, "page: Home")

    assert c.status is CartStatus.ACTIVE
    assert c.last_activity_at == back
    assert [(ch.before, ch.after, ch.at) for ch in changes] == [(CartStatus.ABANDONED, CartStatus.ACTIVE, back)]
    assert "page: Home" in changes[0].reason


def test_a_cart_event_after_abandonment_reactivates_the_cart_and_updates_it() -> None:
    c = abandoned_cart()
    extra = item(quantity=2)

    changes = c.record_activity(product_added(extra, at=START + IDLE + MINUTE))

    assert [ch.after for ch in changes] == [CartStatus.ACTIVE]
    assert extra in c.items


def test_a_late_event_from_before_abandonment_does_not_reactivate_the_cart() -> None:
    c = abandoned_cart()

    changes = c.record_activity(page_viewed(at=START + 10 * MINUTE))
    presence = c.record_presence(START + 20 * MINUTE, "page")

    assert changes == [] and presence == []
    assert c.status is CartStatus.ABANDONED
    assert c.abandoned_at == START + IDLE


def test_presence_older_than_the_last_activity_changes_nothing() -> None:
    c = cart(at=START + IDLE)

    assert c.record_presence(START, "old page view") == []
    assert c.last_activity_at == START + IDLE


def test_a_reactivated_cart_can_be_abandoned_again_later() -> None:
    c = abandoned_cart()
    back = START + 2 * IDLE
    c.record_presence(back, "page")

    assert c.mark_abandoned(back + IDLE, RULES) != []
    assert c.status is CartStatus.ABANDONED
    assert c.abandoned_at == back + IDLE


# --- orders ------------------------------------------------------------------------------------------------


def test_an_order_on_an_active_cart_is_a_conversion() -> None:
    c = cart()
    order_id = random_id("o")

    changes = c.mark_ordered(order_id, 2500, START + MINUTE, "order placed")

    assert c.status is CartStatus.CONVERTED
    assert (c.order_id, c.order_value, c.closed_at) == (order_id, 2500, START + MINUTE)
    assert [(ch.before, ch.after) for ch in changes] == [(CartStatus.ACTIVE, CartStatus.CONVERTED)]


def test_an_order_on_an_abandoned_cart_is_a_recovery() -> None:
    c = abandoned_cart()

    changes = c.mark_ordered("o-1", 1999, START + 2 * IDLE, "order placed")

    assert c.status is CartStatus.RECOVERED
    assert c.closed_at == START + 2 * IDLE
    assert [(ch.before, ch.after) for ch in changes] == [(CartStatus.ABANDONED, CartStatus.RECOVERED)]


def test_an_order_on_a_recovering_cart_is_a_recovery() -> None:
    c = abandoned_cart()
    c.status = CartStatus.RECOVERING

    c.mark_ordered("o-1", None, START + 2 * IDLE, "order placed")

    assert c.status is CartStatus.RECOVERED


def test_an_order_placed_before_abandonment_but_learnt_later_is_a_conversion_not_a_recovery() -> None:
    c = abandoned_cart()

    c.mark_ordered("o-1", 1999, START + 10 * MINUTE, "order placed")

    assert c.status is CartStatus.CONVERTED
    assert c.closed_at == START + 10 * MINUTE


def test_an_order_on_an_expired_cart_is_refused() -> None:
    c = abandoned_cart()
    c.expire(START + IDLE + WINDOW, RULES)

    assert c.mark_ordered("o-late", 1999, START + IDLE + WINDOW + MINUTE, "order placed") == []
    assert c.status is CartStatus.EXPIRED
    assert c.order_id is None


def test_an_order_placed_inside_the_window_but_learnt_after_expiry_recovers_the_cart() -> None:
    c = abandoned_cart()
    c.expire(START + IDLE + WINDOW, RULES)

    changes = c.mark_ordered("o-1", 1999, START + IDLE + timedelta(days=1), "order placed")

    assert [(ch.before, ch.after) for ch in changes] == [(CartStatus.EXPIRED, CartStatus.RECOVERED)]
    assert c.closed_at == START + IDLE + timedelta(days=1)


def test_a_closed_cart_ignores_a_second_order() -> None:
    for status in (CartStatus.CONVERTED, CartStatus.RECOVERED, CartStatus.SUPPRESSED):
        c = cart(status=status, order_id="first")

        assert c.mark_ordered("second", 1, START + MINUTE, "order placed") == []
        assert c.status is status
        assert c.order_id == "first"


# --- expiry and suppression --------------------------------------------------------------------------------


def test_an_abandoned_cart_expires_when_the_recovery_window_is_over() -> None:
    c = abandoned_cart()
    due = START + IDLE + WINDOW

    assert c.expire_due(RULES) == due
    assert c.expire(due - MINUTE, RULES) == []
    changes = c.expire(due, RULES)

    assert c.status is CartStatus.EXPIRED
    assert c.closed_at == due
    assert [(ch.before, ch.after, ch.reason) for ch in changes] == [
        (CartStatus.ABANDONED, CartStatus.EXPIRED, "recovery window over")
    ]


def test_an_active_cart_does_not_expire() -> None:
    c = cart()

    assert c.expire_due(RULES) is None
    assert c.expire(START + 2 * WINDOW, RULES) == []
    assert c.status is CartStatus.ACTIVE


def test_an_open_cart_is_suppressed_on_erasure() -> None:
    for make in (cart, abandoned_cart):
        c = make()
        before = c.status

        changes = c.suppress(START + IDLE * 2, "shopper data erased")

        assert c.status is CartStatus.SUPPRESSED
        assert c.closed_at == START + IDLE * 2
        assert [(ch.before, ch.after, ch.reason) for ch in changes] == [
            (before, CartStatus.SUPPRESSED, "shopper data erased")
        ]


def test_a_closed_cart_stays_as_it_is_on_erasure() -> None:
    c = cart(status=CartStatus.CONVERTED)

    assert c.suppress(START, "shopper data erased") == []
    assert c.status is CartStatus.CONVERTED


def test_a_closed_cart_ignores_activity() -> None:
    for status in (CartStatus.CONVERTED, CartStatus.RECOVERED, CartStatus.EXPIRED, CartStatus.SUPPRESSED):
        c = cart(status=status)
        before = c.items

        assert c.record_activity(product_added(at=START + IDLE)) == []
        assert c.record_presence(START + IDLE, "page") == []
        assert (c.status, c.items, c.last_activity_at) == (status, before, START)


def test_open_and_closed_statuses() -> None:
    assert {s for s in CartStatus if s.is_open} == {CartStatus.ACTIVE, CartStatus.ABANDONED, CartStatus.RECOVERING}


# --- catch_up: the timers that were due by an event's time -------------------------------------------------


def test_catch_up_abandons_a_cart_at_its_due_time_not_at_the_late_event_time() -> None:
    c = cart()

    changes = c.catch_up(START + 2 * IDLE, RULES)

    assert c.status is CartStatus.ABANDONED
    assert c.abandoned_at == START + IDLE
    assert [ch.at for ch in changes] == [START + IDLE]


def test_catch_up_abandons_then_expires_a_cart_long_left() -> None:
    c = cart()

    changes = c.catch_up(START + IDLE + WINDOW + MINUTE, RULES)

    assert [(ch.after, ch.at) for ch in changes] == [
        (CartStatus.ABANDONED, START + IDLE),
        (CartStatus.EXPIRED, START + IDLE + WINDOW),
    ]


def test_catch_up_before_anything_is_due_changes_nothing() -> None:
    c = cart()

    assert c.catch_up(START + IDLE - MINUTE, RULES) == []
    assert c.status is CartStatus.ACTIVE


def test_catch_up_expires_an_abandoned_cart_when_the_window_is_over() -> None:
    c = abandoned_cart()

    assert [ch.after for ch in c.catch_up(START + IDLE + WINDOW, RULES)] == [CartStatus.EXPIRED]


# --- contents ----------------------------------------------------------------------------------------------


def test_adding_a_product_already_in_the_cart_sums_the_quantities() -> None:
    line = item(quantity=1, price=500)
    c = cart(items=(line,))

    c.record_activity(product_added(item(line.product_id, quantity=2, price=500), at=START + MINUTE))

    assert [(i.product_id, i.quantity) for i in c.items] == [(line.product_id, 3)]
    assert c.value == 1500


def test_the_same_product_in_another_variant_is_another_line() -> None:
    c = cart(items=(item("shirt", variant="S"),))

    c.record_activity(product_added(item("shirt", variant="M"), at=START + MINUTE))

    assert [(i.product_id, i.variant, i.quantity) for i in c.items] == [("shirt", "S", 1), ("shirt", "M", 1)]


def test_removing_part_of_a_line_subtracts_its_quantity() -> None:
    c = cart(items=(item("p", quantity=3, price=100),))

    c.record_activity(product_removed(item("p", quantity=1), at=START + MINUTE))

    assert [(i.product_id, i.quantity) for i in c.items] == [("p", 2)]
    assert c.value == 200


def test_removing_a_whole_line_or_more_drops_it() -> None:
    c = cart(items=(item("p", quantity=2), item("q")))

    c.record_activity(product_removed(item("p", quantity=5), at=START + MINUTE))

    assert [i.product_id for i in c.items] == ["q"]


def test_removing_a_product_not_in_the_cart_changes_nothing() -> None:
    line = item("p")
    c = cart(items=(line,))

    c.record_activity(product_removed(item("absent"), at=START + MINUTE))

    assert c.items == (line,)


def test_a_snapshot_replaces_the_contents_and_its_stated_value() -> None:
    c = cart(items=(item("old"),))
    new = (item("a", quantity=2, price=1000), item("b", price=250))

    c.record_activity(cart_viewed(*new, at=START + MINUTE, value=2000))

    assert c.items == new
    assert c.contents_at == START + MINUTE
    assert c.value == 2000


def test_a_snapshot_older_than_the_current_contents_is_ignored() -> None:
    c = cart()
    newer = (item("newer"),)
    c.record_activity(cart_viewed(*newer, at=START + 10 * MINUTE))

    c.record_activity(cart_viewed(item("older"), at=START + 5 * MINUTE))

    assert c.items == newer
    assert c.contents_at == START + 10 * MINUTE


def test_a_snapshot_older_than_a_product_added_since_does_not_drop_the_product() -> None:
    c = cart(items=())
    c.record_activity(product_added(item("later"), at=START + 10 * MINUTE))

    c.record_activity(cart_viewed(item("earlier"), at=START + 5 * MINUTE))

    assert [i.product_id for i in c.items] == ["later"]


def test_a_product_added_before_the_snapshot_it_is_part_of_is_not_counted_twice() -> None:
    c = cart(items=())
    c.record_activity(cart_viewed(item("p", quantity=1), at=START + 10 * MINUTE))

    c.record_activity(product_added(item("p", quantity=1), at=START + 5 * MINUTE))

    assert [(i.product_id, i.quantity) for i in c.items] == [("p", 1)]


def test_deltas_clear_a_stated_value_so_the_value_follows_the_lines() -> None:
    c = cart(items=())
    c.record_activity(cart_viewed(item("a", price=1000), at=START, value=900))
    assert c.value == 900

    c.record_activity(product_added(item("b", price=500), at=START + MINUTE))

    assert c.stated_value is None
    assert c.value == 1500


def test_an_event_without_a_content_change_keeps_the_items() -> None:
    line = item()
    c = cart(items=(line,))

    c.record_activity(event(name="Coupon Applied", change=CartChange.NONE, at=START + MINUTE))

    assert c.items == (line,)
    assert c.last_activity_at == START + MINUTE


def test_activity_records_checkout_contact_currency_restore_url_and_refs_once() -> None:
    c = cart(refs=("cart:x",))

    c.record_activity(
        checkout_started(
            at=START + MINUTE, phone="+15550100", currency="EUR", restore_url="https://s/r", refs=("checkout:1",)
        )
    )
    c.record_activity(product_added(at=START + 2 * MINUTE, refs=("checkout:1",)))

    assert (c.checkout_started, c.has_contact, c.currency, c.restore_url) == (True, True, "EUR", "https://s/r")
    assert c.refs == ("cart:x", "checkout:1")


def test_an_order_after_the_shopper_came_back_to_an_abandoned_cart_is_a_recovery() -> None:
    c = abandoned_cart()
    c.record_presence(START + 2 * IDLE, "clicked the reminder")
    assert c.status is CartStatus.ACTIVE

    c.mark_ordered("o-1", 1999, START + 2 * IDLE + MINUTE, "order placed")

    assert c.status is CartStatus.RECOVERED
