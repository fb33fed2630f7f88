"""python -m fastrnn bench --models: the table's rows and ratios, at tiny sizes."""

import pytest

from fastrnn.apps import bench_models


def test_rows_and_ratios_at_tiny_sizes():
    pytest.importorskip("torch")
    rows = bench_models.run(threads=1, rounds=2, block=0,
                            wordlm=dict(V=50, E=8, H1=8, H2=8, T=4, B=3),
                            charlm=dict(V=10, E=4, H=8, T=5, B=2, sample=5))
    assert [r["workload"] for r in rows] == ["wordlm train", "wordlm score", "charlm train",
                                            "charlm sample"]
    for r in rows:
        s = r["seconds"]
        assert s["fastrnn"] > 0 and s["torch"] > 0
        assert r["ratio"] == pytest.approx(s["fastrnn"] / s["torch"])
    assert rows[0]["tokens_per_s"]["fastrnn"] == pytest.approx(12 / rows[0]["seconds"]["fastrnn"])
    assert "| wordlm train |" in bench_models.format_table(rows)
