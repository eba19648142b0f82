"""Reads by a list of ids, in chunks: older SQLite builds allow at most 999 parameters to a statement."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from typing import Any

IDS_PER_QUERY = 500


def rows_for_ids(
    conn: sqlite3.Connection, sql: str, store_id: int, ids: Collection[str], *after: object
) -> Iterator[Any]:
    """The rows of `sql` for every chunk of `ids`; `sql` has `{ids}` where a chunk's placeholders go, and its
    parameters are the store, the chunk, then `after`. A row's order holds within its chunk only."""
    listed = list(ids)
    for start in range(0, len(listed), IDS_PER_QUERY):
        chunk = listed[start : start + IDS_PER_QUERY]
        yield from conn.execute(sql.format(ids=",".join("?" * len(chunk))), (store_id, *chunk, *after))
