"""The embedded backend: SQLite in WAL mode, one file for the event log and one for the state."""

from cartrecover.adapters.sqlite.database import SqliteDatabase
from cartrecover.adapters.sqlite.eventlog import SqliteEventLog

__all__ = ["SqliteDatabase", "SqliteEventLog"]
