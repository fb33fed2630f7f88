"""One benchmark per (system, cell, work, shape, dtype): the same workloads as
``python -m fastrnn bench``, timed by pytest-benchmark instead."""

import numpy as np
import pytest

from fastrnn.apps import bench
from fastrnn.apps import peers
from fastrnn.layers.cell_kinds import BY_KEY, KEYS

from conftest import QUICK

SHAPES = ((5, 1, 4, 8), (4, 3, 6, 8)) if QUICK else bench.DEFAULT_SHAPES
SYSTEMS = peers.SYSTEMS
AVAILABLE = peers.available()


def _ids(shape):
    return "T{}-B{}-D{}-H{}".format(*shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
@pytest.mark.parametrize("work", ["inference", "training"])
@pytest.mark.parametrize("cell", KEYS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_layer(benchmark, system, cell, work, shape, dtype):
    if system not in AVAILABLE:
        pytest.skip(f"{system} is not importable here")
    if system == "onnxruntime" and dtype == np.float64:
        pytest.skip("ONNX Runtime's CPU kernels run float32 recurrent nodes only")
    T, B, D, H = shape
    layer = BY_KEY[cell].layer_class(D, H, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    works = peers.build(system, cell, layer, x, dy, peers.default_threads())
    if work not in works:
        pytest.skip(f"{system} has no {work} here")
    benchmark.group = f"{cell} {work} {_ids(shape)} {np.dtype(dtype).name}"
    benchmark.extra_info["gflop"] = bench.flops(cell, work, T, B, D, H) / 1e9
    benchmark(works[work])
