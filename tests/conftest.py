"""Fixtures shared by every test: a fresh engine per test on its own SQLite file, on a manual clock."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from cartrecover.bootstrap import build_engine
from cartrecover.decision_settings import DecisionConfig
from cartrecover.engine import Engine
from cartrecover.entrypoints.http.app import create_app
from cartrecover.settings import Settings, StoreConfig, load_settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = SHARED / "samples"
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: its own data directory, manual clock, no holdout, no exploration, no config file or
    environment (tests of the holdout or of exploring decisions ask for them)."""
    overrides.setdefault("holdout_share", 0.0)
    overrides.setdefault("decisions", DecisionConfig(exploration=0.0))
    return load_settings(None, env={}, data_dir=tmp_path / "data", clock="manual", **overrides)


@dataclass
class Shop:
    """A store with its keys in clear, and ready-made auth headers."""

    name: str
    store_id: int
    write_key: str
    admin_key: str
    shopify_secret: str
    woocommerce_secret: str

    @property
    def basic(self) -> dict[str, str]:
        """Segment-style Basic auth: the write key as username, empty password."""
        return {"Authorization": "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()}

    @property
    def admin(self) -> dict[str, str]:
        """Bearer auth with the admin key."""
        return {"Authorization": f"Bearer {self.admin_key}"}


def add_shop(engine: Engine, name: str | None = None, **config: Any) -> Shop:
    """Create a store with random name and generated keys."""
    store, keys = engine.add_store(StoreConfig(name=name or f"shop-{uuid.uuid4().hex[:8]}", **config))
    return Shop(
        name=store.name,
        store_id=store.store_id,
        write_key=keys["write_key"],
        admin_key=keys["admin_key"],
        shopify_secret=keys["shopify_secret"],
        woocommerce_secret=keys["woocommerce_secret"],
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh SQLite file, manual clock at START."""
    built = build_engine(make_settings(tmp_path), start=START)
    yield built
    built.close()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    """One store in the engine."""
    return add_shop(engine)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The HTTP app in process (lifespan run: writer thread and lifecycle consumer)."""
    with TestClient(create_app(engine)) as test_client:
        yield test_client


def move_clock(client: TestClient, shop: Shop, when: datetime | str) -> dict[str, Any]:  # type: ignore[type-arg]
    """POST /api/v1/clock and return its answer; afterwards every event and timer due by then is processed."""
    now = when if isinstance(when, str) else when.isoformat()
    response = client.post("/api/v1/clock", json={"now": now}, headers=shop.admin)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
