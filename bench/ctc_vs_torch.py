"""Round-robin timing of fastrnn.ctc_loss against torch's CPU ctc_loss, loss and gradient,
at T = 200, N = 32, C = 30, S = 40 (issue 21): 15 alternating rounds, medians.

    PYTHONPATH=. python bench/ctc_vs_torch.py    (from the repository root)
"""
import time

import numpy as np
import torch

from fastrnn import ctc_loss

T, N, C, S = 200, 32, 30, 40
rng = np.random.default_rng(0)
for dt, tdt in ((np.float32, torch.float32), (np.float64, torch.float64)):
    z = rng.standard_normal((T, N, C))
    lp = (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(dt)
    tg = rng.integers(1, C, (N, S)); il = np.full(N, T); tl = np.full(N, S)
    lt = torch.tensor(lp, requires_grad=True); tgt = torch.tensor(tg); ilt = torch.tensor(il); tlt = torch.tensor(tl)
    def f_fast(): ctc_loss(lp, tg, il, tl)
    def f_torch():
        lt.grad = None
        torch.nn.functional.ctc_loss(lt, tgt, ilt, tlt).backward()
    times = {"fastrnn": [], "torch": []}
    for f in (f_fast, f_torch): f()
    for r in range(15):
        for name, f in (("fastrnn", f_fast), ("torch", f_torch)):
            t0 = time.perf_counter(); f(); times[name].append(time.perf_counter() - t0)
    med = {k: np.median(v) * 1e3 for k, v in times.items()}
    print(np.dtype(dt).name, {k: f"{v:.2f} ms" for k, v in med.items()}, "ratio", round(med["fastrnn"] / med["torch"], 3))
