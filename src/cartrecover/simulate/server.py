"""A real engine for the demo and the simulator: `cartrecover serve --clock manual`, its CLI, and its API.

Everything here talks to the engine the way a user would: a subprocess and HTTP, nothing imported from it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

__all__ = ["all_carts", "cli_json", "iso", "post", "server"]


def iso(at: datetime) -> str:
    """ISO-8601 with a `Z` for UTC, as Segment writes it."""
    return at.isoformat().replace("+00:00", "Z")


def post(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    """POST JSON and return the decoded answer; anything but a 200 is an error worth stopping for."""
    response = http.post(path, json=body, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
    return response.json()


def all_carts(http: httpx.Client, admin: dict[str, str], status: str | None = None) -> list[dict[str, Any]]:
    """Every cart of the store (optionally of one status), following the `next` cursor."""
    carts: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if status:
            params["status"] = status
        if after:
            params["after"] = after
        page = http.get("/api/v1/carts", params=params, headers=admin)
        page.raise_for_status()
        body = page.json()
        carts += body["carts"]
        after = body["next"]
        if not after:
            return carts


def cli_json(*args: str) -> dict[str, str]:
    """Run `cartrecover ARGS…` (which must print JSON) and decode its output."""
    out = subprocess.run([sys.executable, "-m", "cartrecover", *args], check=True, capture_output=True, text=True)
    keys: dict[str, str] = json.loads(out.stdout)
    return keys


@contextmanager
def server(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`cartrecover serve --clock manual` on a free port of 127.0.0.1, stopped afterwards; yields its base URL.

    `env` adds `CARTRECOVER_*` settings for the server (the caller's own config file is never read).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (data_dir / "server.log").open("w")
    command = [sys.executable, "-m", "cartrecover", "serve", "--clock", "manual", "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CARTRECOVER_CONFIG": "", **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see server.log in the data directory")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not become ready within 60 s")
