"""Typed identifiers, so that a cart id is never passed where a shopper id belongs."""

from typing import NewType

StoreId = NewType("StoreId", int)
CartId = NewType("CartId", str)
ShopperId = NewType("ShopperId", str)
MessageId = NewType("MessageId", str)
OrderId = NewType("OrderId", str)
