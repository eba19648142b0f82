"""LightGBM trees as a decision reads them: raw scores, probabilities and TreeSHAP contributions.

A decision scores one shopper and a few dozen candidate actions, so the fixed cost of a call matters more
than the cost of the trees. `Booster.predict` rebuilds its parameter string, checks the input and converts
the output on every call (about 20 µs before any tree is read); here the same C functions of LightGBM are
called directly, with the parameters and argument types prepared once when the model is loaded:

- one row goes through LightGBM's single-row predictor (`LGBM_BoosterPredictForMatSingleRowFast`), whose
  configuration is built once per model and prediction type;
- several rows go through `LGBM_BoosterPredictForMat`, on one thread (a decision is too small to share).

The results are LightGBM's own, bit for bit: the tests compare them with `Booster.predict`.
"""

from __future__ import annotations

import ctypes
import re
import threading
import weakref
from typing import Any

import lightgbm as lgb
import numpy as np
from lightgbm import basic as _lgb_basic

__all__ = ["Trees"]

# Constants of LightGBM's C API (c_api.h).
_PREDICT_RAW_SCORE = 1
_PREDICT_CONTRIB = 3
_DTYPE_FLOAT64 = 1
_PARAMETERS = b"num_threads=1"

# LightGBM's own handle on its shared library, where its Python package keeps it (a private name: the tests
# compare every result with Booster.predict, so a move would show there).
_LIB: Any = _lgb_basic._LIB  # type: ignore[attr-defined]

# Our own prototypes of the functions we call: declaring argument types here converts arguments in C and
# leaves LightGBM's own function objects (which its Python code calls with ctypes values) untouched.
_predict_for_mat = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # booster
    ctypes.c_void_p,  # data
    ctypes.c_int,  # data type
    ctypes.c_int32,  # rows
    ctypes.c_int32,  # columns
    ctypes.c_int,  # row major
    ctypes.c_int,  # prediction type
    ctypes.c_int,  # first iteration
    ctypes.c_int,  # number of iterations (-1: the best, else all)
    ctypes.c_char_p,  # parameters
    ctypes.c_void_p,  # out: length (int64)
    ctypes.c_void_p,  # out: results (float64)
)(("LGBM_BoosterPredictForMat", _LIB))
_fast_init = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # booster
    ctypes.c_int,  # prediction type
    ctypes.c_int,  # first iteration
    ctypes.c_int,  # number of iterations
    ctypes.c_int,  # data type
    ctypes.c_int32,  # columns
    ctypes.c_char_p,  # parameters
    ctypes.POINTER(ctypes.c_void_p),  # out: configuration
)(("LGBM_BoosterPredictForMatSingleRowFastInit", _LIB))
_fast_predict = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # configuration
    ctypes.c_void_p,  # data
    ctypes.c_void_p,  # out: length (int64)
    ctypes.c_void_p,  # out: results (float64)
)(("LGBM_BoosterPredictForMatSingleRowFast", _LIB))
_fast_free = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(("LGBM_FastConfigFree", _LIB))

_SIGMOID = re.compile(r"^objective=binary(?: sigmoid:([0-9.eE+-]+))?", re.MULTILINE)


def _check(code: int) -> None:
    if code != 0:
        raise lgb.basic.LightGBMError(_LIB.LGBM_GetLastError().decode("utf-8"))


class _SingleRow:
    """LightGBM's single-row predictor for one prediction type, built once and freed with its model."""

    __slots__ = ("__weakref__", "_config", "_length", "_lock", "_out")

    def __init__(self, handle: ctypes.c_void_p, kind: int, columns: int, width: int) -> None:
        config = ctypes.c_void_p()
        _check(_fast_init(handle, kind, 0, -1, _DTYPE_FLOAT64, columns, _PARAMETERS, ctypes.byref(config)))
        self._config = config
        self._out = np.empty(width, dtype=np.float64)
        self._length = ctypes.c_int64()
        # The configuration owns one output buffer and one feature buffer: calls must not overlap.
        self._lock = threading.Lock()
        weakref.finalize(self, _fast_free, config)

    def __call__(self, row: np.ndarray) -> np.ndarray:
        with self._lock:
            _check(_fast_predict(self._config, row.ctypes.data, ctypes.addressof(self._length), self._out.ctypes.data))
            return self._out.copy()


class Trees:
    """A fitted LightGBM model, loaded from its text and scored on float64 rows."""

    __slots__ = ("_booster", "_contrib_row", "_raw_row", "_sigmoid", "names", "text")

    def __init__(self, booster: lgb.Booster, text: str) -> None:
        self._booster = booster  # keeps the C handle alive for the predictors below
        self.text = text
        self.names: tuple[str, ...] = tuple(booster.feature_name())
        handle = booster._handle
        columns = len(self.names)
        self._raw_row = _SingleRow(handle, _PREDICT_RAW_SCORE, columns, 1)
        self._contrib_row = _SingleRow(handle, _PREDICT_CONTRIB, columns, columns + 1)
        found = _SIGMOID.search(text)
        self._sigmoid = None if found is None else float(found.group(1) or 1.0)

    @classmethod
    def from_text(cls, text: str) -> Trees:
        """Load a model from the text LightGBM writes (`Booster.model_to_string()`)."""
        return cls(lgb.Booster(model_str=text), text)

    @classmethod
    def from_booster(cls, booster: lgb.Booster) -> Trees:
        """Wrap a freshly trained booster, keeping only its best iteration when early stopping chose one."""
        text = booster.model_to_string(num_iteration=booster.best_iteration or -1)
        return cls.from_text(text)

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        # A wrong width would make LightGBM read past the buffer: this one check stays.
        if rows.ndim != 2 or rows.shape[1] != len(self.names):
            raise ValueError(f"rows must be (n, {len(self.names)}), got {rows.shape}")
        return np.ascontiguousarray(rows, dtype=np.float64)

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds for a binary model), one per row of a 2-D array."""
        rows = self._rows(rows)
        count = rows.shape[0]
        if count == 1:
            return self._raw_row(rows)
        out = np.empty(count, dtype=np.float64)
        length = ctypes.c_int64()
        _check(
            _predict_for_mat(
                self._booster._handle,
                rows.ctypes.data,
                _DTYPE_FLOAT64,
                count,
                rows.shape[1],
                1,
                _PREDICT_RAW_SCORE,
                0,
                -1,
                _PARAMETERS,
                ctypes.addressof(length),
                out.ctypes.data,
            )
        )
        return out

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities of the positive class for a binary model: the logistic function of `raw`."""
        if self._sigmoid is None:
            raise ValueError("probability() needs a model trained with objective=binary")
        return 1.0 / (1.0 + np.exp(-self._sigmoid * self.raw(rows)))

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions of each feature to one row's raw score; the last entry is the expected value.

        They add up to `raw(row)`.
        """
        return self._contrib_row(self._rows(row.reshape(1, -1)))

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Trees.from_text, (self.text,))

    def __repr__(self) -> str:
        return f"Trees({len(self.names)} features, {self._booster.num_trees()} trees)"
