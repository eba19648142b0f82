"""The console channel: a line on stdout per message, and the whole message appended to a JSON-lines file."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from cartrecover.ports.channels import OutboundMessage


class ConsoleSender:
    """For the demo and development: nothing leaves the machine."""

    def __init__(self, path: Path | None, out: TextIO | None = None, quiet: bool = False) -> None:
        self._path, self._out, self._quiet = path, out, quiet
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_url(cls, url: str, data_dir: Path) -> ConsoleSender:
        """`console` (stdout + <data_dir>/messages.jsonl), `console:quiet` (the file only), `file:///path.jsonl`."""
        if url.startswith("file://"):
            return cls(Path(url.removeprefix("file://")), quiet=True)
        return cls(data_dir / "messages.jsonl", quiet=url == "console:quiet")

    def send(self, message: OutboundMessage) -> str:
        """Print and append; the message id is the provider id."""
        with self._lock:
            if self._path is not None:
                with self._path.open("a") as file:
                    file.write(json.dumps(asdict(message)) + "\n")
            if not self._quiet:
                import sys

                print(
                    f"[{message.channel}] to {message.to}: {message.subject}", file=self._out or sys.stdout, flush=True
                )
        return message.message_id


class NullSender:
    """Accepts everything and keeps nothing (benchmarks)."""

    @classmethod
    def from_url(cls, url: str, data_dir: Path) -> NullSender:
        """`null`."""
        return cls()

    def send(self, message: OutboundMessage) -> str:
        """Nothing."""
        return message.message_id
