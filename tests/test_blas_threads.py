"""fastrnn.runtime.blas_threads.single_threaded_blas: with threadpoolctl, and its fallback without."""

import sys

import numpy as np
import pytest

from fastrnn.runtime import blas_threads as _blas_threads


def _counts(controls):
    return [get() for _, get in controls]


def test_fallback_without_threadpoolctl_sets_and_restores(monkeypatch):
    np.ones((2, 2)) @ np.ones((2, 2))          # NumPy's BLAS is loaded
    controls = _blas_threads._openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS with a known entry point is loaded in this process")
    before = _counts(controls)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)     # import fails
    with _blas_threads.single_threaded_blas():
        assert _counts(controls) == [1] * len(controls)
    assert _counts(controls) == before
    with pytest.raises(RuntimeError):                          # restored on errors too
        with _blas_threads.single_threaded_blas():
            raise RuntimeError("boom")
    assert _counts(controls) == before


def test_with_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    np.ones((2, 2)) @ np.ones((2, 2))
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()
              if p["user_api"] == "blas"]
    with _blas_threads.single_threaded_blas():
        inside = [p["num_threads"] for p in threadpoolctl.threadpool_info()
                  if p["user_api"] == "blas"]
        assert inside and all(n == 1 for n in inside)
    after = [p["num_threads"] for p in threadpoolctl.threadpool_info()
             if p["user_api"] == "blas"]
    assert after == before
