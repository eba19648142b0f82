"""The engine's clock: wall time in production, moved by hand for replay, simulation and tests."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the time every stage works on."""

    manual: bool

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
