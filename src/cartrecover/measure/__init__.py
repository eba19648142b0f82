"""Measure: what the journeys earned, against the holdout, and which touches orders are credited to."""

from __future__ import annotations

from cartrecover.measure.attribution import Touch, last_touch
from cartrecover.measure.outcomes import CartOutcome, abandoned_between
from cartrecover.measure.present import as_json, as_table
from cartrecover.measure.report import GroupFigures, Incremental, Report, Row, VariantFigures, build, recovery
from cartrecover.measure.statistics import Interval

__all__ = [
    "CartOutcome",
    "GroupFigures",
    "Incremental",
    "Interval",
    "Report",
    "Row",
    "Touch",
    "VariantFigures",
    "abandoned_between",
    "as_json",
    "as_table",
    "build",
    "last_touch",
    "recovery",
]
