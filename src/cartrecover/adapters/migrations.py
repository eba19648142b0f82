"""Versioned schema migrations: numbered SQL files per backend, recorded in a `schema_migrations` table.

Each backend keeps its files in its own `migrations/` folder (`0001_initial.sql`, `0002_….sql`, …) and applies
the ones its database has not recorded, in order, each in one transaction with the row that records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

from cartrecover.errors import StoreError

_NAME = re.compile(r"(\d{4})_\w+\.sql")


@dataclass(frozen=True, order=True)
class Migration:
    """One schema change: its version (the file's number), its name (the file's stem) and its SQL."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class Migrated:
    """What `migrate` did: the migrations applied now (oldest first) and the schema version it left."""

    applied: tuple[str, ...]
    version: int


def packaged(package: str) -> tuple[Migration, ...]:
    """The migrations in the package's `migrations/` folder, by version; numbered 1, 2, … without gaps."""
    found = []
    for entry in files(package).joinpath("migrations").iterdir():
        if match := _NAME.fullmatch(entry.name):
            found.append(Migration(int(match[1]), entry.name.removesuffix(".sql"), entry.read_text()))
    found.sort()
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"{package}: migrations must be numbered 1, 2, … without gaps or repeats, not {versions}")
    return tuple(found)


def pending(migrations: tuple[Migration, ...], applied: set[int], where: str) -> list[Migration]:
    """The migrations not applied yet; a database that recorded versions we do not know is refused."""
    unknown = applied - {m.version for m in migrations}
    if unknown:
        raise StoreError(
            f"{where} has schema version {max(unknown)}, newer than this cartrecover knows "
            f"({len(migrations)}): upgrade cartrecover"
        )
    return [m for m in migrations if m.version not in applied]


def behind_message(where: str, version: int, latest: int) -> str:
    """What to tell someone whose database is behind the code."""
    found = f"has schema version {version}" if version else "has no cartrecover tables yet"
    return (
        f"{where} {found}, this cartrecover needs version {latest}: "
        "run `cartrecover migrate` (with the same --config or CARTRECOVER_DATABASE_URL) first"
    )
