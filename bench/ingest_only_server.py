"""`cartrecover serve` with the same server options, but without the lifecycle consumer or timer sweep.

Only for the benchmark: it shows what ingest alone costs when nothing else competes for the process.
Run as `python bench/ingest_only_server.py --data-dir DIR --port PORT`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import granian

from cartrecover.entrypoints import cli


def create() -> Any:
    """The app without background work (imported by the server's worker process)."""
    from cartrecover.bootstrap import build_engine
    from cartrecover.entrypoints.http.app import create_app
    from cartrecover.entrypoints.http.ingest import IngestFastPath
    from cartrecover.settings import load_settings

    return IngestFastPath(create_app(build_engine(load_settings()), background=False))


def main() -> int:
    """Serve exactly as `cartrecover serve` does, with this module's app as the target."""
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, here)
    original = granian.Granian.__init__

    def with_our_target(self: Any, target: str, *args: Any, **kwargs: Any) -> None:
        original(self, "ingest_only_server:create", *args, **kwargs)

    granian.Granian.__init__ = with_our_target  # type: ignore[method-assign]
    return cli.main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
