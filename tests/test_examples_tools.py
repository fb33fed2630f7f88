"""fastrnn.apps.seqtools: edit distance and label error rate (against a brute-force
recursion), the held-out split, and the .npz model archive's checks."""

import functools
import json

import numpy as np
import pytest

import fastrnn
from fastrnn.apps import seqtools


def brute_edit_distance(a, b):
    """The recursive definition, memoised: an oracle independent of the table in seqtools."""
    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    return d(len(a), len(b))


@pytest.mark.parametrize("seed", range(6))
def test_edit_distance_matches_the_recursion(seed):
    rng = np.random.default_rng(seed)
    for _ in range(30):
        a = tuple(rng.integers(0, 3, rng.integers(0, 7)).tolist())
        b = tuple(rng.integers(0, 3, rng.integers(0, 7)).tolist())
        assert seqtools.edit_distance(a, b) == brute_edit_distance(a, b)
        assert seqtools.edit_distance(b, a) == brute_edit_distance(a, b)


@pytest.mark.parametrize("a, b, d", [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3),
                                     ("same", "same", 0), ([1, 2, 3], [3, 2, 1], 2)])
def test_edit_distance_known_cases(a, b, d):
    assert seqtools.edit_distance(a, b) == d


def test_label_error_rate_is_total_distance_over_total_length():
    refs, hyps = [[1, 2, 3], [4, 5]], [[1, 3], [4, 5, 6, 7]]
    assert seqtools.label_error_rate(refs, hyps) == pytest.approx((1 + 2) / 5)
    with pytest.raises(ValueError, match="hypotheses"):
        seqtools.label_error_rate(refs, hyps[:1])
    with pytest.raises(ValueError, match="references"):
        seqtools.label_error_rate([[]], [[1]])


@pytest.mark.parametrize("count, held", [(10, 1), (100, 30), (1797, 360)])
def test_held_out_split_partitions_and_is_seeded(count, held):
    tr, ho = seqtools.held_out_split(count, held, seed=3)
    assert len(ho) == held and len(tr) == count - held
    assert np.array_equal(np.sort(np.concatenate([tr, ho])), np.arange(count))
    tr2, ho2 = seqtools.held_out_split(count, held, seed=3)
    assert np.array_equal(ho, ho2) and np.array_equal(tr, tr2)
    for bad in (0, count):
        with pytest.raises(ValueError, match="held_out"):
            seqtools.held_out_split(count, bad, seed=0)


def test_archive_round_trip_and_rejections(tmp_path):
    layer = fastrnn.Linear(3, 2, seed=0)
    path = tmp_path / "m.npz"
    seqtools.save_layers(path, "toy", 1, {"a": 1}, {"lin": layer})
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    config, arrays = seqtools.read_archive(path, "toy", 1)
    assert config == {"a": 1}
    other = fastrnn.Linear(3, 2, seed=1)
    seqtools.load_layers(path, "toy", arrays, {"lin": other})
    assert np.array_equal(other.params["weight"], layer.params["weight"])
    with pytest.raises(ValueError, match="not a fastrnn other model"):
        seqtools.read_archive(path, "other", 1)
    with pytest.raises(ValueError, match="format version 1, this fastrnn reads version 2"):
        seqtools.read_archive(path, "toy", 2)
    with pytest.raises(ValueError, match="corrupted toy model"):
        seqtools.load_layers(path, "toy", arrays, {"lin": fastrnn.Linear(4, 2)})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        seqtools.read_archive(bad, "toy", 1)
    np.savez(tmp_path / "cfg.npz", format=np.array("toy"), format_version=np.array(1),
             config=np.array(json.dumps([1, 2])))
    with pytest.raises(ValueError, match="config is not a mapping"):
        seqtools.read_archive(tmp_path / "cfg.npz", "toy", 1)
    with pytest.raises(FileNotFoundError):
        seqtools.read_archive(tmp_path / "missing.npz", "toy", 1)
