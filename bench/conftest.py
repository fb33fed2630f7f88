"""pytest-benchmark suites comparing fastrnn with its peers.

Run with ``pytest bench/`` (pytest-benchmark prints its table of timings;
``--benchmark-json FILE`` saves them).  FASTRNN_BENCH_QUICK=1 shrinks every
shape so the suite runs in seconds (the test suite does this to keep the
benchmarks from rotting).  Peers that are not importable are skipped.
"""

import os

QUICK = os.environ.get("FASTRNN_BENCH_QUICK", "") not in ("", "0")
