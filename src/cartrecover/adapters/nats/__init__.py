"""NATS JetStream backend for the event log (`pip install 'cartrecover[nats]'`)."""

from cartrecover.adapters.nats.eventlog import NatsEventLog

__all__ = ["NatsEventLog"]
