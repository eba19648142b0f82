"""Fixtures the unit suites share."""

from __future__ import annotations

import pytest

from cartrecover.learn.train import train
from cartrecover.models.bundle import Bundle
from tests.unit.test_learned_decisions import synthetic_log


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    """A model trained on synthetic_log's known truth (6,000 logged decisions)."""
    return train(synthetic_log(6000), []).bundle
