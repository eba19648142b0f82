"""The state store at scale: PostgreSQL, shared by any number of API and worker processes (`pip install
'cartrecover[postgres]'`)."""

from cartrecover.adapters.postgres.database import PostgresDatabase

__all__ = ["PostgresDatabase"]
