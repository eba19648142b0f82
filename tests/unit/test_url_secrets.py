"""Backend URLs carry passwords: what the engine prints or raises about them never does."""

from __future__ import annotations

import pytest

from cartrecover.adapters.postgres import PostgresDatabase
from cartrecover.errors import StoreError
from cartrecover.settings import load_settings, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/shop?sslmode=require", "postgresql://app:***@db:5432/shop?sslmode=require"),
        ("postgresql://db/shop?user=app&password=s3cret", "postgresql://db/shop?user=app&password=***"),
        ("nats://h:4222/?stream=events&token=s3cret", "nats://h:4222/?stream=events&token=***"),
        ("postgresql://app@db/shop?options=-csearch_path%3Dx", "postgresql://app@db/shop?options=-csearch_path%3Dx"),
        ("sqlite:///data/cartrecover.db", "sqlite:///data/cartrecover.db"),
        ("sqlite://:memory:", "sqlite://:memory:"),
    ],
)
def test_a_url_is_shown_without_its_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_settings_never_show_the_database_password() -> None:
    settings = load_settings(None, env={"CARTRECOVER_DATABASE_URL": "postgresql://app:s3cret@db/shop"})

    assert "s3cret" not in repr(settings) and "app:***@db" in repr(settings)


def test_a_database_that_cannot_be_reached_is_named_without_its_password() -> None:
    with pytest.raises(StoreError) as raised:
        PostgresDatabase.from_url("postgresql://app:s3cret@127.0.0.1:1/shop?connect_timeout=2")

    assert "s3cret" not in str(raised.value) and "app:***@127.0.0.1:1/shop" in str(raised.value)
