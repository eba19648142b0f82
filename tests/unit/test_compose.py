"""docker-compose.yml and its Dockerfile, checked without Docker: the file parses, the stack has its parts in the
right order, and every CARTRECOVER_* variable it sets is one the settings read, with a value they accept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cartrecover.adapters.memory import MemoryCache
from cartrecover.adapters.nats._options import NatsOptions
from cartrecover.adapters.redis import RedisCache
from cartrecover.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?])?([^}]*)\}")


class ReadNames(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        super().__init__(values or {})
        self.looked_up: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.looked_up.add(key)
        return super().get(key, default)


def names_settings_read() -> set[str]:
    """The CARTRECOVER_* names `load_settings` looks up in the environment."""
    env = ReadNames()
    load_settings(None, env=env)
    return {name for name in env.looked_up if name.startswith("CARTRECOVER_")}


def interpolated(value: str) -> str:
    """A value as Compose would pass it with no variable set: `${X:-default}` → default, `${X:?…}` → a stand-in."""
    return _INTERPOLATION.sub(lambda m: "secret" if m[0].startswith(f"${{{m[1]}:?") else m[2], value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved
    return loaded


def environments(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: service.get("environment", {}) for name, service in compose["services"].items()}


def test_every_cartrecover_variable_the_stack_sets_is_one_the_settings_read(compose: dict[str, Any]) -> None:
    known = names_settings_read()
    assert {"CARTRECOVER_DATABASE_URL", "CARTRECOVER_CACHE_URL", "CARTRECOVER_CONFIG"} <= known  # the check bites
    used = {name for env in environments(compose).values() for name in env if name.startswith("CARTRECOVER_")}
    used |= set(re.findall(r"^ENV (CARTRECOVER_\w+)=", DOCKERFILE.read_text(), re.MULTILINE))
    assert used, "no CARTRECOVER_* variable found: the test would check nothing"
    assert used - known == set()


@pytest.mark.parametrize("service", ["migrate", "api", "worker"])
def test_each_cartrecover_service_s_settings_load_and_name_the_scale_out_backends(
    compose: dict[str, Any], service: str
) -> None:
    env = {name: interpolated(str(value)) for name, value in environments(compose)[service].items()}
    settings = load_settings(None, env=env)
    assert settings.resolved_database_url.startswith("postgresql://cartrecover:cartrecover@postgres:5432/")
    assert NatsOptions.from_url(settings.resolved_event_log_url).monitor == "http://nats:8222"
    RedisCache.from_url(settings.resolved_cache_url).close()  # parses; connects only when used
    assert settings.secret_key and settings.resolved_worker_partitions == 8
    assert settings.lifecycle_mode == ("off" if service == "api" else "process")


def test_the_stack_migrates_once_before_api_and_workers_start_on_healthy_servers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "nats", "redis", "migrate", "api", "worker"} <= set(services)
    assert services["migrate"]["command"] == ["cartrecover", "migrate"] and services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["nats"] == depends["redis"] == {"condition": "service_healthy"}
        assert services[name]["build"] == "." and services[name]["deploy"]["replicas"] >= 2
    assert services["api"]["command"] == ["cartrecover", "serve"]
    assert services["worker"]["command"] == ["cartrecover", "worker"]
    for server in ("postgres", "nats", "redis"):
        assert "healthcheck" in services[server]


def test_nats_runs_jetstream_on_files_fsynced_before_every_acknowledgement(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    config = next(volume.split(":")[0] for volume in nats["volumes"] if volume.endswith("nats.conf:ro"))
    text = (ROOT / config).read_text()
    assert re.search(r"^\s*sync_interval:\s*always\b", text, re.MULTILINE)
    assert re.search(r"^\s*store_dir:", text, re.MULTILINE) and nats["command"] == ["-c", "/etc/nats/nats.conf"]
    major, minor = (int(part) for part in re.findall(r"nats:(\d+)\.(\d+)", nats["image"])[0])
    assert (major, minor) >= (2, 12)  # sync_interval needs 2.10, atomic batches 2.12


def test_redis_is_run_as_a_cache_and_the_image_installs_every_extra() -> None:
    compose = COMPOSE.read_text()
    assert "--maxmemory-policy" in compose and '"--appendonly", "no"' in compose
    dockerfile = DOCKERFILE.read_text()
    assert dockerfile.count("FROM python:3.11-slim") == 1
    assert "pip install --no-cache-dir '.[postgres,nats,redis]'" in dockerfile
    assert MemoryCache.from_url(load_settings(None, env={}).resolved_cache_url) is not None
