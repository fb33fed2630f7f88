"""The probes of the machine's limits (fastrnn.runtime.machine, fastrnn.kernels.probe)."""

import math

import numpy as np
import pytest

from fastrnn.kernels import probe
from fastrnn.runtime import machine
from fastrnn.runtime.aligned import empty_aligned

LEVELS = ("L1", "L2", "L3", "DRAM")


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("rounds", [1, 1000])
def test_the_fma_probe_counts_its_flops(rounds, nthreads):
    flops, used = probe.fma(rounds, nthreads)
    assert 1 <= used <= nthreads
    # a multiply and an add per lane, per chain (12), per round, per thread
    assert flops == 2 * probe.vector_lanes() * 12 * rounds * used
    assert probe.vector_lanes() in (4, 8, 16)


@pytest.mark.parametrize("offset", [0, 1])       # unaligned reads are fine too
@pytest.mark.parametrize("passes", [1, 3])
def test_the_read_probe_counts_whole_blocks(passes, offset):
    block = probe.read_block()
    x = empty_aligned(3 * block + 5 + offset, np.float32)[offset:]
    x.fill(1.0)
    assert probe.read(x, passes) == passes * 3 * block * 4


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("blocks", [2, 7])
def test_the_shared_read_probe_counts_each_threads_run(blocks, nthreads):
    block = probe.read_block()
    x = empty_aligned(blocks * block + 3, np.float32)
    x.fill(1.0)
    nbytes, used = probe.read_shared(x, 2, nthreads)
    assert 1 <= used <= nthreads
    # each thread reads its share of whole blocks, twice
    assert nbytes == used * 2 * (blocks // nthreads) * block * 4


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("rounds", [0, 50])
def test_the_hand_over_probe_runs_every_part_of_every_stage(rounds, nthreads):
    # one part a thread per stage, whichever thread claims it
    assert probe.handover(5, nthreads, rounds) == 5 * min(nthreads, probe.max_parts())


@pytest.mark.parametrize("call, args", [(probe.fma, (0, 1)), (probe.fma, (1, 0)),
                                        (probe.handover, (0, 2)), (probe.handover, (1, 0)),
                                        (probe.handover, (1, 2, -1)),
                                        (probe.read_shared, (np.ones(128, np.float32), 1, 2)),
                                        (probe.read_shared, (np.ones(1024, np.float32), 0, 1)),
                                        (probe.fma, (1, 65)),
                                        (probe.read, (np.ones(3, np.float32), 1)),
                                        (probe.read, (np.ones(1024, np.float32), 0))])
def test_probes_reject_bad_arguments(call, args):
    with pytest.raises(ValueError):
        call(*args)


def test_limits_are_measured_once_and_plausible():
    lim = machine.limits()
    assert machine.limits() is lim                   # cached for the process
    assert lim["fma_gflops"] > 0 and lim["fma_gflops_all"] > 0
    assert lim["fma_gflops_all"] > 0.5 * lim["fma_gflops"]
    assert set(lim["read_gbs"]) == set(LEVELS)
    assert all(math.isfinite(v) and v > 0 for v in lim["read_gbs"].values())
    assert set(lim["read_gbs_all"]) == set(LEVELS)
    assert all(math.isfinite(v) and v > 0 for v in lim["read_gbs_all"].values())
    sizes = [lim["probe_bytes"][level] for level in LEVELS]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    lines = machine.describe(lim)
    assert "GFLOP/s" in lines[0] and all(level in lines[1] for level in LEVELS)
    assert f"{lim['threads']} threads" in lines[2]
    assert lim["handover_us"] >= 0 and (lim["threads"] > 1 or lim["handover_us"] == 0)


def _cache_entry(root, name, level, kind, size):
    folder = root / name
    folder.mkdir()
    (folder / "level").write_text(f"{level}\n")
    (folder / "type").write_text(f"{kind}\n")
    (folder / "size").write_text(f"{size}\n")


def test_cache_sizes_read_the_data_caches(tmp_path):
    _cache_entry(tmp_path, "index0", 1, "Data", "48K")
    _cache_entry(tmp_path, "index1", 1, "Instruction", "32K")
    _cache_entry(tmp_path, "index2", 2, "Unified", "2048K")
    _cache_entry(tmp_path, "index3", 3, "Unified", "96M")
    assert machine.cache_sizes(str(tmp_path)) == {"L1": 48 << 10, "L2": 2 << 20,
                                                  "L3": 96 << 20}


def test_cache_sizes_fall_back_when_the_os_says_nothing(tmp_path):
    _cache_entry(tmp_path, "index0", 1, "Data", "not a size")
    assert machine.cache_sizes(str(tmp_path / "missing")) == machine._DEFAULT_CACHES
    assert machine.cache_sizes(str(tmp_path)) == machine._DEFAULT_CACHES
