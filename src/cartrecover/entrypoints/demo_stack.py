"""`cartrecover demo` on the scale-out stack: a PostgreSQL schema, a NATS stream and Redis keys of the run's own.

The demo's processes (`stores add`, `serve`, `report`) read their backends from the environment. When the
settings name a PostgreSQL state store, a NATS event log or a Redis cache, each run gets a new schema in that
database, migrated as `cartrecover migrate` does, a new stream on that server and a key prefix of its own: the
demo never touches data that was there, and a second run starts as empty as the first. They are kept
afterwards, so that the dashboard can be served on them; the demo prints how to do that and how to drop them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cartrecover.bootstrap import migrate_database
from cartrecover.errors import ConfigError, StoreError
from cartrecover.settings import Settings, redact_url

_URLS = ("CARTRECOVER_DATABASE_URL", "CARTRECOVER_EVENT_LOG_URL", "CARTRECOVER_CACHE_URL")


@dataclass(frozen=True)
class DemoStack:
    """Where a demo run keeps its state, log and cache: the variables for its processes, and what was made."""

    variables: dict[str, str] = field(default_factory=dict)
    made: tuple[str, ...] = ()


def prepare(settings: Settings) -> DemoStack:
    """A fresh schema (migrated), stream and key prefix for a run on the configured PostgreSQL, NATS and Redis;
    nothing to make on the embedded stack."""
    name = f"cartrecover_demo_{uuid.uuid4().hex[:12]}"
    variables, made = {}, []
    if settings.database_url.split(":", 1)[0] in ("postgresql", "postgres"):
        url = _with_params(settings.database_url, options=f"-csearch_path={name}")
        _create_schema(settings.database_url, name)
        migrated = migrate_database(replace(settings, database_url=url))
        variables[_URLS[0]] = url
        made.append(f"PostgreSQL schema {name} at version {migrated.version} (drop: DROP SCHEMA {name} CASCADE)")
    if settings.event_log_url.startswith("nats:"):
        variables[_URLS[1]] = _with_params(settings.event_log_url, stream=name)
        made.append(f"NATS streams {name} and {name}_scrubbed (drop: nats stream rm {name}; the same for the other)")
    if settings.cache_url.split(":", 1)[0] in ("redis", "rediss"):
        variables[_URLS[2]] = _with_params(settings.cache_url, prefix=f"{name}:")
        made.append(f"Redis keys under {name}: (a cache: they expire on their own)")
    return DemoStack(variables, tuple(made))


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """The process's environment, inherited by the demo's processes, on these backends (none: the embedded
    stack) and without a config file; restored afterwards."""
    saved = {name: os.environ.get(name) for name in (*_URLS, "CARTRECOVER_CONFIG")}
    try:
        for name in _URLS:
            os.environ.pop(name, None)
        os.environ.update({**variables, "CARTRECOVER_CONFIG": ""})
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def describe(stack: DemoStack) -> str:
    """What the run made, and the variables that serve its data again (secrets shown as ***)."""
    shown = " ".join(f"{name}='{redact_url(url)}'" for name, url in stack.variables.items())
    lines = [f"  {made}" for made in stack.made]
    serve = f"  to serve the dashboard on it, put these before the serve command above: {shown}"
    return "\n".join(["the run's scale-out stack is kept:", *lines, serve])


def _create_schema(url: str, name: str) -> None:
    try:
        import psycopg
        from psycopg import sql

        from cartrecover.adapters.postgres._options import PoolOptions
    except ImportError as exc:
        raise ConfigError(f"the postgresql state store needs `pip install 'cartrecover[postgres]'`: {exc}") from exc
    url, _ = PoolOptions.from_url(url)  # the pool's own parameters are not libpq's
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise StoreError(f"cannot create the demo's schema in {redact_url(url)}: {exc}") from exc


def _with_params(url: str, **params: str) -> str:
    """The URL with these query parameters set (replacing any of the same names)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params]
    return urlunsplit(parts._replace(path=parts.path or "/", query=urlencode([*query, *params.items()])))
