"""Whole-model benchmark: ``python -m fastrnn bench --models``.

The charlm and wordlm models, fastrnn against the same model in PyTorch,
timed side by side in one process: blocks of calls in turns (round-robin),
with a pause after each system's block, medians over the rounds.  Workloads:

- wordlm train: one step of Embedding 200 -> LSTM 256 -> LSTM 128 -> Linear V,
  softmax cross-entropy, clipping at 5 and Adam, on a (T, B) = (20, 60) window;
- wordlm score: the same model's inference loss over one window;
- charlm train: one step of the charlm defaults (Embedding 32 -> LSTM 128 ->
  Linear, batch 32, window 64);
- charlm sample: 100 characters drawn one at a time from that model.

Rates are tokens (words or characters) per second.  Measurements, not tests:
the machine is shared and noisy.
"""

import numpy as np

from fastrnn.apps.bench import time_round_robin
from fastrnn.apps.peers import SPINS_AFTER
from fastrnn.kernels.threads import get_num_threads, set_num_threads
from fastrnn.layers.chain import Chain
from fastrnn.layers.embedding import Embedding
from fastrnn.layers.linear import Linear
from fastrnn.layers.lstm import LSTM
from fastrnn.runtime.blas_threads import single_threaded_blas
from fastrnn.training.clip import clip_grad_norm
from fastrnn.training.optim import Adam
from fastrnn.training.sampling import sample as draw

__all__ = ["run", "format_table", "WORDLM", "CHARLM"]

WORDLM = dict(V=10_000, E=200, H1=256, H2=128, T=20, B=60)
CHARLM = dict(V=54, E=32, H=128, T=64, B=32, sample=100)


def _fastrnn_models(w, c, rng):
    wnet = Chain(Embedding(w["V"], w["E"], seed=1), LSTM(w["E"], w["H1"], seed=2),
                 LSTM(w["H1"], w["H2"], seed=3), Linear(w["H2"], w["V"], seed=4))
    cnet = Chain(Embedding(c["V"], c["E"], seed=5), LSTM(c["E"], c["H"], seed=6),
                 Linear(c["H"], c["V"], seed=7))
    wx, wy = rng.integers(0, w["V"], (2, w["T"], w["B"]))
    cx, cy = rng.integers(0, c["V"], (2, c["T"], c["B"]))
    wopt, copt = Adam(wnet, lr=1e-3), Adam(cnet, lr=1e-3)

    def step(net, opt, x, y):
        net.zero_grad()
        net.softmax_cross_entropy(x, y)      # forward, loss and backward, output layer fused
        clip_grad_norm(net.grads, 5.0)
        opt.step()

    def score():
        return wnet.softmax_cross_entropy(wx, wy, backward=False)[0]

    def sample():
        gen, step, token = np.random.default_rng(0), cnet.stepper(), 0
        for _ in range(c["sample"]):
            token = draw(step(token), rng=gen)     # one position at a time, states kept

    return {"wordlm train": lambda: step(wnet, wopt, wx, wy), "wordlm score": score,
            "charlm train": lambda: step(cnet, copt, cx, cy), "charlm sample": sample}


def _torch_models(w, c, rng, threads):
    import torch
    torch.set_num_threads(threads)

    class Net(torch.nn.Module):
        def __init__(self, V, E, hidden):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            sizes = [E] + hidden
            self.rnns = torch.nn.ModuleList(torch.nn.LSTM(a, b) for a, b in
                                            zip(sizes, sizes[1:]))
            self.out = torch.nn.Linear(hidden[-1], V)

        def forward(self, x, states=None):
            h, new = self.emb(x), []
            for i, rnn in enumerate(self.rnns):
                h, s = rnn(h, None if states is None else states[i])
                new.append(s)
            return self.out(h), new

    wnet, cnet = Net(w["V"], w["E"], [w["H1"], w["H2"]]), Net(c["V"], c["E"], [c["H"]])
    wx, wy = (torch.from_numpy(a) for a in rng.integers(0, w["V"], (2, w["T"], w["B"])))
    cx, cy = (torch.from_numpy(a) for a in rng.integers(0, c["V"], (2, c["T"], c["B"])))
    wopt = torch.optim.Adam(wnet.parameters(), lr=1e-3)
    copt = torch.optim.Adam(cnet.parameters(), lr=1e-3)
    ce = torch.nn.functional.cross_entropy

    def step(net, opt, x, y, V):
        opt.zero_grad()
        loss = ce(net(x)[0].reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    def score():
        with torch.no_grad():
            return float(ce(wnet(wx)[0].reshape(-1, w["V"]), wy.reshape(-1)))

    def sample():
        gen = torch.Generator().manual_seed(0)
        token, states = torch.zeros((1, 1), dtype=torch.long), None
        with torch.no_grad():
            for _ in range(c["sample"]):
                z, states = cnet(token, states)
                token[0, 0] = torch.multinomial(torch.softmax(z[0, 0], -1), 1, generator=gen)

    return {"wordlm train": lambda: step(wnet, wopt, wx, wy, w["V"]), "wordlm score": score,
            "charlm train": lambda: step(cnet, copt, cx, cy, c["V"]), "charlm sample": sample}


def _tokens(name, w, c):
    if name.startswith("wordlm"):
        return w["T"] * w["B"]
    return c["sample"] if name == "charlm sample" else c["T"] * c["B"]


def run(*, threads=None, rounds=7, block=0.03, wordlm=None, charlm=None):
    """Time every workload on fastrnn and torch in turns (round-robin).

    Each round gives each system a warm-up call, then a block of back-to-back
    calls lasting about `block` seconds, then an untimed pause while its
    thread pool stops spinning (fastrnn.apps.peers.SPINS_AFTER), so that
    neither system is timed while the other's idle workers hold a core.

    Returns a list of dicts: workload, seconds (median per call, by system),
    ratio (fastrnn / torch) and tokens_per_s (by system).
    """
    w, c = dict(WORDLM, **(wordlm or {})), dict(CHARLM, **(charlm or {}))
    threads = threads or get_num_threads()
    previous = set_num_threads(threads)
    try:
        rng = np.random.default_rng(0)
        systems = {"fastrnn": _fastrnn_models(w, c, rng),
                   "torch": _torch_models(w, c, rng, threads)}
        rows = []
        with single_threaded_blas():
            for name in systems["fastrnn"]:
                med = time_round_robin({s: fns[name] for s, fns in systems.items()},
                                       repeats=rounds, budget=float("inf"),
                                       pauses=SPINS_AFTER, block=block)
                n = _tokens(name, w, c)
                rows.append(dict(workload=name, seconds=med, ratio=med["fastrnn"] / med["torch"],
                                 tokens_per_s={s: n / t for s, t in med.items()}))
    finally:
        set_num_threads(previous)
    return rows


def format_table(rows):
    lines = ["| workload | fastrnn ms | torch ms | fastrnn / torch | fastrnn tokens/s | "
             "torch tokens/s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        s, t = r["seconds"], r["tokens_per_s"]
        lines.append(f"| {r['workload']} | {1e3 * s['fastrnn']:.2f} | {1e3 * s['torch']:.2f} | "
                     f"{r['ratio']:.2f} | {t['fastrnn']:,.0f} | {t['torch']:,.0f} |")
    return "\n".join(lines)
