"""Schemathesis (v4) against the running server's own `GET /openapi.json`: no operation answers with a 5xx.

Every operation is called with the right credentials for its part of the API (Basic write key on /v1, Bearer
admin key on /api), so generated data reaches the handlers instead of stopping at a 401.

The schema is only known once the server runs, so the operations are turned into Hypothesis strategies inside
the test (`APIOperation.as_strategy`) rather than through `schemathesis.pytest.from_fixture`, whose lazy
loader reads `request.node._nodeid`, which pytest 9 no longer has.

The fuzzing runs on both stacks: generated data that gets past validation is logged and applied by SQLite on
one, by NATS JetStream and PostgreSQL on the other.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.e2e.conftest import Server, on_both_stacks

MAX_EXAMPLES = 25  # per operation and generation mode


def credentials(server: Server, path: str) -> dict[str, str]:
    """The store key the path asks for."""
    shop = server.stores["a"]
    if path.startswith("/v1/"):
        return shop.basic
    if path.startswith("/api/"):
        return shop.admin
    return {}


def fuzz(server: Server, operation: Any, mode: GenerationMode, called: dict[str, int]) -> None:
    """Call one operation with up to MAX_EXAMPLES generated requests; no 5xx, and 4xx bodies are `{code, message}`."""
    headers = credentials(server, operation.path)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        response = case.call(base_url=server.base_url, headers=headers)
        called[operation.label] = called.get(operation.label, 0) + 1
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            assert set(response.json()) == {"code", "message"}, f"{operation.label}: {response.text}"

    try:
        exercise()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise  # negative mode has nothing to break in an operation without parameters or body: fine


@pytest.mark.slow
@on_both_stacks
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_operation_answers_with_a_server_error(module_server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{module_server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /v1/batch", "POST /v1/track", "GET /api/v1/carts", "POST /api/v1/clock"} <= labels
    called: dict[str, int] = {}
    for operation in operations:
        fuzz(module_server, operation, mode, called)
    if mode is GenerationMode.POSITIVE:
        assert set(called) == labels  # every operation was called
    else:
        assert {"POST /v1/batch", "POST /v1/track", "GET /api/v1/carts", "POST /api/v1/clock"} <= set(called)
