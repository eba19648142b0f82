"""The embedded backend: one SQLite file in WAL mode holds the event log and all state."""

from cartrecover.adapters.sqlite.database import SqliteDatabase

__all__ = ["SqliteDatabase"]
