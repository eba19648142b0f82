"""Lifecycle: carts follow their state machine on event time, driven by the event log and durable timers."""
