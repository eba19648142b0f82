"""LightGBM trees as a decision reads them: raw scores, probabilities and TreeSHAP contributions.

Serving needs LightGBM's predictor, not its Python package: `import lightgbm` also imports scikit-learn,
pandas and SciPy when they are installed, which a decision has no use for. So this module loads LightGBM's
shared library (`lib_lightgbm`, found in the installed package's directory without running the package) and
calls its C API (`c_api.h`) itself: `LGBM_BoosterLoadModelFromString` reads the model text, and

- one row goes through LightGBM's single-row predictor (`LGBM_BoosterPredictForMatSingleRowFast`), whose
  configuration is built once per model and prediction type;
- several rows go through `LGBM_BoosterPredictForMat`, on one thread (a decision is too small to share).

A decision scores one shopper and a few dozen candidate actions, so the fixed cost of a call matters more
than the cost of the trees: `Booster.predict` rebuilds its parameter string, checks the input and converts
the output on every call (about 20 µs before any tree is read); here the parameters and argument types are
prepared once, when the model is loaded.

The results are LightGBM's own, bit for bit: the tests compare them with `Booster.predict`, and check in a
fresh interpreter that loading and scoring a model imports neither LightGBM's package nor scikit-learn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["LightGBMError", "Trees"]

# Constants of LightGBM's C API (c_api.h).
_PREDICT_RAW_SCORE = 1  # C_API_PREDICT_RAW_SCORE
_PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB
_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1
_ALL_ITERATIONS = -1  # num_iteration <= 0: every iteration the model holds
_PARAMETERS = b"num_threads=1"


class LightGBMError(RuntimeError):
    """An error LightGBM's library reported (the message of `LGBM_GetLastError`)."""


def _library_path() -> Path:
    """LightGBM's shared library, where its Python package keeps it, without importing that package.

    `find_spec` of a top-level package only locates it (its `__init__` does not run). The places are those
    LightGBM's own `libpath` tries, in its order, so a process that also imports `lightgbm` (training) loads
    the same file once.
    """
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("LightGBM is not installed (pip install lightgbm): serving needs its predictor")
    name = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}.get(sys.platform, "lib_lightgbm.so")
    tried = []
    for location in spec.submodule_search_locations:
        package = Path(location)
        for candidate in (package.parent / name, package / "bin" / name, package / "lib" / name):
            if candidate.is_file():
                return candidate
            tried.append(str(candidate))
    raise ImportError(f"LightGBM's library is not where its package keeps it: {', '.join(tried)}")


_LIB = ctypes.CDLL(str(_library_path()))


def _function(name: str, *arguments: Any) -> Any:
    """A function of the library with its C prototype, so arguments are converted in C (returns an int)."""
    return ctypes.CFUNCTYPE(ctypes.c_int, *arguments)((name, _LIB))


_last_error = ctypes.CFUNCTYPE(ctypes.c_char_p)(("LGBM_GetLastError", _LIB))
_load_model = _function(
    "LGBM_BoosterLoadModelFromString",
    ctypes.c_char_p,  # model text
    ctypes.c_void_p,  # out: number of iterations (int)
    ctypes.c_void_p,  # out: booster
)
_free_booster = _function("LGBM_BoosterFree", ctypes.c_void_p)
_num_feature = _function("LGBM_BoosterGetNumFeature", ctypes.c_void_p, ctypes.c_void_p)  # out: int
_num_models = _function("LGBM_BoosterNumberOfTotalModel", ctypes.c_void_p, ctypes.c_void_p)  # out: int
_feature_names = _function(
    "LGBM_BoosterGetFeatureNames",
    ctypes.c_void_p,  # booster
    ctypes.c_int,  # number of buffers
    ctypes.c_void_p,  # out: number of names (int)
    ctypes.c_size_t,  # size of each buffer
    ctypes.c_void_p,  # out: size the longest name needs (size_t)
    ctypes.c_void_p,  # buffers (char**)
)
_predict_for_mat = _function(
    "LGBM_BoosterPredictForMat",
    ctypes.c_void_p,  # booster
    ctypes.c_void_p,  # data
    ctypes.c_int,  # data type
    ctypes.c_int32,  # rows
    ctypes.c_int32,  # columns
    ctypes.c_int,  # row major
    ctypes.c_int,  # prediction type
    ctypes.c_int,  # first iteration
    ctypes.c_int,  # number of iterations
    ctypes.c_char_p,  # parameters
    ctypes.c_void_p,  # out: length (int64)
    ctypes.c_void_p,  # out: results (float64)
)
_fast_init = _function(
    "LGBM_BoosterPredictForMatSingleRowFastInit",
    ctypes.c_void_p,  # booster
    ctypes.c_int,  # prediction type
    ctypes.c_int,  # first iteration
    ctypes.c_int,  # number of iterations
    ctypes.c_int,  # data type
    ctypes.c_int32,  # columns
    ctypes.c_char_p,  # parameters
    ctypes.c_void_p,  # out: configuration
)
_fast_predict = _function(
    "LGBM_BoosterPredictForMatSingleRowFast",
    ctypes.c_void_p,  # configuration
    ctypes.c_void_p,  # data
    ctypes.c_void_p,  # out: length (int64)
    ctypes.c_void_p,  # out: results (float64)
)
_fast_free = _function("LGBM_FastConfigFree", ctypes.c_void_p)

_SIGMOID = re.compile(r"^objective=binary(?: sigmoid:([0-9.eE+-]+))?", re.MULTILINE)


def _check(code: int) -> None:
    if code != 0:
        raise LightGBMError((_last_error() or b"unknown error").decode("utf-8", "replace"))


class _Booster:
    """LightGBM's booster read from model text; the C object is freed when this one is collected."""

    __slots__ = ("__weakref__", "handle")

    def __init__(self, text: str) -> None:
        handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        _check(_load_model(text.encode("utf-8"), ctypes.byref(iterations), ctypes.byref(handle)))
        self.handle = handle
        weakref.finalize(self, _free_booster, handle)

    def _count(self, function: Any) -> int:
        out = ctypes.c_int()
        _check(function(self.handle, ctypes.byref(out)))
        return out.value

    def num_trees(self) -> int:
        return self._count(_num_models)

    def feature_names(self) -> tuple[str, ...]:
        count = self._count(_num_feature)
        size = 256
        while True:
            buffers = [ctypes.create_string_buffer(size) for _ in range(count)]
            pointers = (ctypes.c_void_p * count)(*(ctypes.addressof(buffer) for buffer in buffers))
            written, needed = ctypes.c_int(), ctypes.c_size_t()
            _check(_feature_names(self.handle, count, ctypes.byref(written), size, ctypes.byref(needed), pointers))
            if needed.value <= size:  # else a name was cut: again with buffers that fit the longest
                return tuple(buffer.value.decode("utf-8") for buffer in buffers[: written.value])
            size = needed.value


class _SingleRow:
    """LightGBM's single-row predictor for one prediction type, built once and freed with its model."""

    __slots__ = ("__weakref__", "_booster", "_config", "_length", "_lock", "_out")

    def __init__(self, booster: _Booster, kind: int, columns: int, width: int) -> None:
        config = ctypes.c_void_p()
        _check(
            _fast_init(
                booster.handle, kind, 0, _ALL_ITERATIONS, _DTYPE_FLOAT64, columns, _PARAMETERS, ctypes.byref(config)
            )
        )
        # The configuration points at the booster: holding it here frees the configuration first.
        self._booster = booster
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


class _Trained(Protocol):
    """What `Trees.from_booster` reads of a trained `lightgbm.Booster`."""

    @property
    def best_iteration(self) -> int: ...

    def model_to_string(self, num_iteration: int | None = ...) -> str: ...


class Trees:
    """A fitted LightGBM model, loaded from its text and scored on float64 rows."""

    __slots__ = ("_booster", "_contrib_row", "_raw_row", "_sigmoid", "names", "text")

    def __init__(self, text: str) -> None:
        self._booster = _Booster(text)
        self.text = text
        self.names: tuple[str, ...] = self._booster.feature_names()
        columns = len(self.names)
        self._raw_row = _SingleRow(self._booster, _PREDICT_RAW_SCORE, columns, 1)
        self._contrib_row = _SingleRow(self._booster, _PREDICT_CONTRIB, columns, columns + 1)
        found = _SIGMOID.search(text)
        self._sigmoid = None if found is None else float(found.group(1) or 1.0)

    @classmethod
    def from_text(cls, text: str) -> Trees:
        """Load a model from the text LightGBM writes (`Booster.model_to_string()`)."""
        return cls(text)

    @classmethod
    def from_booster(cls, booster: _Trained) -> Trees:
        """Wrap a freshly trained booster, keeping only its best iteration when early stopping chose one."""
        return cls(booster.model_to_string(num_iteration=booster.best_iteration or -1))

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
                self._booster.handle,
                rows.ctypes.data,
                _DTYPE_FLOAT64,
                count,
                rows.shape[1],
                _ROW_MAJOR,
                _PREDICT_RAW_SCORE,
                0,
                _ALL_ITERATIONS,
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
