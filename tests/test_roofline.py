"""The roofline model (fastrnn.runtime.roofline) and the path choice built on it
(fastrnn.runtime.paths), on made-up machines, so that each answer can be worked out by hand."""

import pytest

from fastrnn.runtime import paths, roofline

MiB = 1 << 20


def machine(fma=100.0, fma_all=200.0, threads=2, handover_us=1.0, **reads):
    """A machine's limits as fastrnn.runtime.machine.limits() gives them."""
    one = {"L1": 200.0, "L2": 100.0, "L3": 80.0, "DRAM": 30.0}
    every = {"L1": 400.0, "L2": 200.0, "L3": 120.0, "DRAM": 40.0}
    every.update(reads)
    return {"fma_gflops": fma, "fma_gflops_all": fma_all, "threads": threads,
            "read_gbs": one, "read_gbs_all": every, "handover_us": handover_us,
            "caches": {"L1": 32 << 10, "L2": 1 * MiB, "L3": 32 * MiB}}


@pytest.mark.parametrize("cell, G", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_flops_and_weight_bytes_count_every_gate(cell, G):
    assert roofline.flops(cell, 5, 3, 7, 11) == 2 * 5 * 3 * G * 11 * (7 + 11)
    assert roofline.flops(cell, 5, 3, 7, 11, training=True) == 3 * 2 * 5 * 3 * G * 11 * 18
    assert roofline.weight_bytes(cell, 64, 8) == G * 64 * 64 * 8


@pytest.mark.parametrize("nbytes, threads, level", [
    (16 << 10, 1, "L1"), (48 << 10, 2, "L1"), (48 << 10, 1, "L2"),
    (MiB, 2, "L2"), (MiB, 1, "L3"), (24 * MiB, 2, "L3"), (25 * MiB, 2, "DRAM")])
def test_the_weights_sit_in_the_fastest_level_that_holds_each_threads_share(nbytes, threads,
                                                                              level):
    caches = machine()["caches"]
    assert roofline.weight_level(nbytes, caches, threads) == level


def test_a_large_batch_is_compute_bound():
    lim = machine()
    r = roofline.roofline("lstm", 10, 128, 256, 256, limits=lim)
    flops = 2 * 10 * 128 * 1024 * 512
    assert r["bound"] == "compute" and r["flops"] == flops
    assert r["seconds"] == pytest.approx(flops / 200e9)
    # float64: half the FMA rate, twice the bytes
    r64 = roofline.roofline("lstm", 10, 128, 256, 256, itemsize=8, limits=lim)
    assert r64["compute_seconds"] == pytest.approx(2 * r["compute_seconds"])
    assert r64["bytes"] == 2 * r["bytes"]


def test_a_single_sequence_of_a_wide_layer_is_bound_by_the_level_holding_its_weights():
    lim = machine()
    r = roofline.roofline("lstm", 10, 1, 2048, 2048, limits=lim)    # 64 MiB of W_hh
    assert r["bound"] == "DRAM" and r["bytes"] == 10 * 4 * 2048 * 2048 * 4
    assert r["seconds"] == pytest.approx(r["bytes"] / 40e9)
    # training reads W_hh again at every step of backward
    rt = roofline.roofline("lstm", 10, 1, 2048, 2048, training=True, limits=lim)
    assert rt["bytes"] == 2 * r["bytes"]


def test_units_split_for_small_batches_of_wide_layers_and_rows_otherwise():
    lim = machine()
    # H = 512: 4 MiB of W_hh, 2 MiB a thread: both from L3, but half the bytes each
    assert paths.units_rows("lstm", 4, 512, 4, 2, lim) == 4
    # a large batch is compute-bound both ways, and rows need no hand-over
    assert paths.units_rows("lstm", 16, 512, 4, 2, lim) == 1
    # a small layer: W_hh in each core's L2 either way
    assert paths.units_rows("lstm", 4, 128, 4, 2, lim) == 1
    # never above MAX_UNITS_ROWS, never for one row or one thread
    assert paths.units_rows("lstm", paths.MAX_UNITS_ROWS + 1, 2048, 4, 2, lim) == 1
    assert paths.units_rows("lstm", 1, 2048, 4, 2, lim) == 1
    assert paths.units_rows("lstm", 4, 2048, 4, 1, lim) == 1


def test_a_costly_hand_over_keeps_the_rows_split():
    cheap = machine(handover_us=1.0)
    dear = machine(handover_us=1000.0)
    assert paths.units_rows("gru", 2, 1024, 4, 2, cheap) == 2
    assert paths.units_rows("gru", 2, 1024, 4, 2, dear) == 1
    costs = paths.step_costs("gru", 2, 1024, 4, 2, cheap, substeps=2)
    base = paths.step_costs("gru", 2, 1024, 4, 2, cheap, substeps=1)
    assert costs["units"] - base["units"] == pytest.approx(1e-6)
    assert costs["rows"] == base["rows"]


@pytest.mark.parametrize("T, B, D, H, chunk", [
    (100, 4, 2048, 2048, 100),     # W_ih read once rather than every 4 steps
    (1000, 4, 2048, 2048, 128),    # at most 16 MiB of float32 gates
    (50, 64, 256, 256, 2),         # large batches keep 512 KiB chunks
    (100, 1, 512, 512, 100)])
def test_chunks_span_enough_steps_to_read_w_ih_rarely(T, B, D, H, chunk):
    from fastrnn.kernels.recurrent import CELLS, PACKING, CallConfig
    cfg = CallConfig(CELLS["LSTM"], 4, T, B, D, H, False, False, PACKING["now"], 2)
    assert cfg.chunk == chunk
