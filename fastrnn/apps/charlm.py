"""Character-level language model: Embedding -> RNN/LSTM/GRU -> Linear, one example per line.

The model reads a line one character at a time and predicts the next one.
A line c_1..c_n is framed by the boundary character "\\n" (token 0), which
both starts and ends it: the inputs are (\\n, c_1, ..., c_n) and the targets
(c_1, ..., c_n, \\n).  For every step t::

    e_t      = E[x_t]                                  (Embedding)
    h_t      = cell(e_t, h_{t-1})                      (fastrnn.RNN, LSTM or GRU)
    logits_t = W h_t + b                               (Linear)
    loss     = mean over characters of -log softmax(logits_t)[target_t]

Training uses truncated backpropagation through time over windows of at most
``bptt`` steps of a batch of lines (names are shorter than one window, so
each line gets full BPTT), Adam, and gradient clipping by the total norm.
Sampling starts from "\\n" (or a prefix) and draws characters until "\\n".

``python -m fastrnn charlm train|sample`` (fastrnn.apps.cli) drives this module;
the package ships a default corpus of dinosaur genus names.
"""

import collections
import hashlib
import json
import time
from importlib import resources

import numpy as np

from fastrnn import reference
from fastrnn.runtime.blas_threads import single_threaded_blas
from fastrnn.layers.cell_kinds import BY_KEY, kind_of
from fastrnn.training.clip import clip_grad_norm
from fastrnn.training.decoding import beam_search
from fastrnn.layers.embedding import Embedding
from fastrnn.layers.linear import Linear
from fastrnn.training.loss import log_softmax, softmax_cross_entropy
from fastrnn.training.optim import Adam
from fastrnn.training.sampling import as_generator, sample
from fastrnn.apps.seqtools import load_layers, read_archive

__all__ = ["CharLM", "load_corpus", "default_corpus_path", "train", "BOUNDARY"]

BOUNDARY = "\n"
_FORMAT = "fastrnn-charlm"
_FORMAT_VERSION = 1


def default_corpus_path():
    """Path of the bundled corpus: a few hundred dinosaur genus names, one per line."""
    return resources.files("fastrnn.apps").joinpath("data", "dinosaurs.txt")


def load_corpus(path=None):
    """The non-empty lines of a UTF-8 text file (the bundled corpus when path is None).

    Trailing whitespace (and "\\r") is stripped from every line.
    """
    source = default_corpus_path() if path is None else path
    with open(source, encoding="utf-8") as f:
        lines = [line.rstrip() for line in f]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"corpus: {source} has no non-empty line")
    return lines


def _line_hash(line):
    return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little")


class ReferenceStack:
    """A fastrnn recurrent layer run by fastrnn.reference (loop-based NumPy), for comparison.

    Same parameters (the layer's own arrays), same maths, same dropout masks
    (drawn from the layer's generator), same calling convention for
    time-major batched input: ``(y, state_n) = stack(x, state0)``,
    ``forward`` and ``backward`` (which adds into ``layer.grads``).
    """

    def __init__(self, layer):
        self.layer = layer
        self.mode = kind_of(layer).key
        self._pairs = kind_of(layer).state_arity == 2     # LSTM's (h, c)
        self.nonlinearity = getattr(layer, "nonlinearity", "tanh")

    def _layer_params(self, l):
        """Layer l's parameters under the names of a one-layer network (..._l0[_reverse])."""
        out = {}
        for name, value in self.layer.params.items():
            base, rest = name.split("_l", 1)          # "weight_ih", "3_reverse"
            layer, _, suffix = rest.partition("_")
            if int(layer) == l:
                out[f"{base}_l0" + (f"_{suffix}" if suffix else "")] = value
        return out

    def _rows(self, state, l):
        if state is None:
            return None
        dirs = self.layer.num_directions
        if isinstance(state, tuple):
            return tuple(np.asarray(s)[l * dirs:(l + 1) * dirs] for s in state)
        return np.asarray(state)[l * dirs:(l + 1) * dirs]

    def _run(self, x, state0, training):
        layer = self.layer
        inp = np.asarray(x, dtype=layer.dtype)
        states, caches, masks = [], [], []
        for l in range(layer.num_layers):
            y, s_n, cache = reference.forward(
                self.mode, self._layer_params(l), inp, self._rows(state0, l), num_layers=1,
                bidirectional=layer.bidirectional, nonlinearity=self.nonlinearity)
            states.append(s_n if isinstance(s_n, tuple) else (s_n,))
            caches.append(cache)
            if training and l < layer.num_layers - 1:
                masks.append(layer._dropout_mask(y.shape))
                if masks[-1] is not None:
                    y = y * masks[-1]
            inp = y
        state_n = tuple(np.concatenate(parts) for parts in zip(*states))
        return inp, (state_n if self._pairs else state_n[0]), (caches, masks)

    def __call__(self, x, state0=None):
        y, state_n, _ = self._run(x, state0, training=False)
        return y, state_n

    def forward(self, x, state0=None):
        return self._run(x, state0, training=True)

    def backward(self, dy, cache, dstate_n=None):
        caches, masks = cache
        grads = self.layer.grads
        d = np.asarray(dy, dtype=self.layer.dtype)
        dstates = []
        for l in reversed(range(self.layer.num_layers)):
            dx, ds0, g = reference.backward(d, caches[l], self._rows(dstate_n, l))
            for name, value in g.items():
                name = name.replace("_l0", f"_l{l}")
                if name in grads:               # (a layer without bias has no bias grads)
                    grads[name] += value
            dstates.append(ds0 if isinstance(ds0, tuple) else (ds0,))
            if l > 0 and masks[l - 1] is not None:
                dx = dx * masks[l - 1]
            d = dx
        dstate0 = tuple(np.concatenate(parts) for parts in zip(*reversed(dstates)))
        return d, (dstate0 if self._pairs else dstate0[0])


class CharLM:
    """Character-level language model: Embedding -> recurrent stack -> Linear.

    Token 0 is the boundary character "\\n" that starts and ends every line;
    for inputs x_t (the line shifted right behind "\\n")::

        e_t = E[x_t],   h_t = cell(e_t, h_{t-1}),   p(x_{t+1} | x_1..x_t) = softmax(W h_t + b)

    and the loss of a line c_1..c_n is -sum_t log p(c_{t+1} | ...), c_{n+1}
    being "\\n", averaged over characters.

    Parameters
    ----------
    chars : str or iterable of str
        The vocabulary: every character a line may contain ("\\n" is added
        as token 0; duplicates are ignored, the order is kept).
    cell : {"lstm", "gru", "rnn"}, default "lstm"
    hidden_size : int, default 128
    embedding_dim : int, default 32
    num_layers : int, default 1
    dropout : float in [0, 1), default 0
        Dropout between recurrent layers (training only).
    dtype : float32 or float64, default float32
    seed : int or None
        Seeds every layer's initialisation (and the dropout masks).

    Attributes
    ----------
    chars : str
        The vocabulary, token i is chars[i].
    embedding, rnn, head : fastrnn.Embedding, RNN/LSTM/GRU, Linear
    layers : list of the three, for optimizers and clipping.
    line_hashes : set of int
        Hashes of the training lines (set by train()), so that samples can be
        told apart from copies of the corpus (``is_novel``).
    """

    def __init__(self, chars, *, cell="lstm", hidden_size=128, embedding_dim=32, num_layers=1,
                 dropout=0.0, dtype=np.float32, seed=None):
        if cell not in BY_KEY:
            raise ValueError(f"cell: expected one of {sorted(BY_KEY)}, got {cell!r}")
        if isinstance(chars, str):
            chars = list(chars)
        vocab = [BOUNDARY]
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise TypeError(f"chars: expected single characters, got {ch!r}")
            if ch not in vocab:
                vocab.append(ch)
        self.chars = "".join(vocab)
        self._index = {ch: i for i, ch in enumerate(self.chars)}
        self.cell = cell
        seeds = np.random.default_rng(seed).integers(2**63, size=3)
        V = len(self.chars)
        self.embedding = Embedding(V, embedding_dim, dtype=dtype, seed=seeds[0])
        self.rnn = BY_KEY[cell].layer_class(embedding_dim, hidden_size, num_layers, dropout=dropout,
                                dtype=dtype, seed=seeds[1])
        self.head = Linear(hidden_size, V, dtype=dtype, seed=seeds[2])
        self.line_hashes = set()

    # ------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self):
        return len(self.chars)

    @property
    def layers(self):
        return [self.embedding, self.rnn, self.head]

    def num_parameters(self):
        return sum(p.size for layer in self.layers for p in layer.params.values())

    def encode(self, text, name="text"):
        """Token ids of the characters of text (each must be in the vocabulary)."""
        try:
            return np.array([self._index[ch] for ch in text], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{name}: character {exc.args[0]!r} is not in the model's "
                             f"vocabulary") from None

    def decode(self, ids):
        """The string of token ids (the boundary token included as "\\n")."""
        return "".join(self.chars[int(i)] for i in ids)

    def is_novel(self, line):
        """True when line is not one of the training lines (see line_hashes)."""
        return _line_hash(line) not in self.line_hashes

    def __repr__(self):
        return (f"CharLM({self.embedding!r} -> {self.rnn!r} -> {self.head!r}, "
                f"{self.num_parameters():,} parameters)")

    # -------------------------------------------------------------- training

    def backend(self, name="fastrnn"):
        """The recurrent stack to train with: the layer itself ("fastrnn", compiled
        kernels) or the same layer run by fastrnn.reference ("reference")."""
        if name == "fastrnn":
            return self.rnn
        if name == "reference":
            return ReferenceStack(self.rnn)
        raise ValueError(f"backend: expected 'fastrnn' or 'reference', got {name!r}")

    def train_step(self, inputs, targets, mask, state0=None, rnn=None):
        """Forward and backward over one window; adds the gradients into the layers' grads.

        Parameters
        ----------
        inputs, targets : int arrays (T, B), time-major
        mask : bool array (T, B), False at padding
        state0 : the recurrent state carried from the previous window, or None
        rnn : the recurrent stack (see backend()); the fastrnn layer by default

        Returns
        -------
        loss : float, mean -log p over the unmasked positions
        state_n : the final recurrent state (for the next window)
        """
        rnn = self.rnn if rnn is None else rnn
        x, emb_cache = self.embedding.forward(inputs)
        y, state_n, rnn_cache = rnn.forward(x, state0)
        logits, head_cache = self.head.forward(y)
        loss, dlogits = softmax_cross_entropy(logits, targets, mask)
        dy = self.head.backward(dlogits, head_cache)
        dx, _ = rnn.backward(dy, rnn_cache)
        self.embedding.backward(dx, emb_cache)
        return loss, state_n

    def evaluate(self, lines, *, batch_size=256, rnn=None):
        """Mean -log p per character (boundary included) over lines, in inference mode."""
        rnn = self.rnn if rnn is None else rnn
        total, count = 0.0, 0
        encoded = [self.encode(line, "lines") for line in lines]
        for start in range(0, len(encoded), batch_size):
            inputs, targets, mask = _pad(encoded[start:start + batch_size])
            y, _ = rnn(self.embedding(inputs))
            loss, _ = softmax_cross_entropy(self.head(y), targets, mask)
            total += loss * mask.sum()
            count += int(mask.sum())
        return float(total / count)

    # -------------------------------------------------------------- sampling

    def step(self, tokens, state):
        """One decoding step for fastrnn.greedy_decode / beam_search.

        tokens (K,) -> log-probabilities (K, V) of the next character and the
        new state (hypotheses on axis 1, fastrnn's layout).
        """
        y, state = self.rnn(self.embedding(np.asarray(tokens))[None], state)
        return log_softmax(self.head(y[0])), state

    def _prime(self, prefix, copies):
        """Run "\\n" + prefix through the model: (logits of the next character, state)."""
        ids = np.concatenate([[0], self.encode(prefix, "prefix")])
        if (ids[1:] == 0).any():
            raise ValueError("prefix: must not contain a newline")
        x = np.repeat(self.embedding(ids)[:, None, :], copies, axis=1)
        y, state = self.rnn(x)
        return self.head(y[-1]), state

    def sample(self, n=1, *, temperature=1.0, top_k=None, top_p=None, prefix="", max_len=40,
               rng=None):
        """Draw n lines, each prefix + characters drawn until "\\n" or max_len of them.

        Every character is drawn by fastrnn.sample(logits, temperature, top_k,
        top_p); the n lines run as one batch.  rng (a Generator or a seed)
        makes the lines reproducible.
        """
        gen = as_generator(rng)
        logits, state = self._prime(prefix, n)
        out = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        for _ in range(max_len):
            tokens = np.atleast_1d(sample(logits, temperature=temperature, top_k=top_k,
                                          top_p=top_p, rng=gen))
            for i in np.flatnonzero(~done):
                if tokens[i] == 0:
                    done[i] = True
                else:
                    out[i].append(int(tokens[i]))
            if done.all():
                break
            y, state = self.rnn(self.embedding(tokens)[None], state)
            logits = self.head(y[0])
        return [prefix + self.decode(ids) for ids in out]

    def beam(self, beam_width, *, prefix="", max_len=40, length_penalty=0.0):
        """The beam_width most probable lines starting with prefix, by beam search.

        Returns a list of (line, score), best first; the score is the summed
        log-probability of the characters after the prefix (the final "\\n"
        included) divided by their number ** length_penalty.
        """
        ids = np.concatenate([[0], self.encode(prefix, "prefix")])
        state = None
        if len(ids) > 1:
            _, state = self.rnn(self.embedding(ids[:-1])[:, None, :])
        results = beam_search(self.step, state, int(ids[-1]), beam_width=beam_width,
                              max_len=max_len, end_token=0, length_penalty=length_penalty)
        return [(prefix + self.decode([t for t in seq if t != 0]), score)
                for seq, score in results]

    # ----------------------------------------------------------- save / load

    def save(self, path):
        """Write the model to an .npz file: configuration, vocabulary and weights, no pickle."""
        config = dict(cell=self.cell, hidden_size=self.rnn.hidden_size,
                      embedding_dim=self.embedding.embedding_dim,
                      num_layers=self.rnn.num_layers, dropout=self.rnn.dropout,
                      dtype=self.rnn.dtype.name, chars=self.chars)
        arrays = {"format": np.array(_FORMAT), "format_version": np.array(_FORMAT_VERSION),
                  "config": np.array(json.dumps(config)),
                  "line_hashes": np.array(sorted(self.line_hashes), dtype=np.uint64)}
        for prefix, layer in self.named_layers.items():
            for name, value in layer.params.items():
                arrays[f"{prefix}.{name}"] = value
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read a model written by save(); the file is read with allow_pickle=False."""
        config, arrays = read_archive(path, _FORMAT, _FORMAT_VERSION, name="charlm")
        try:
            chars = config.pop("chars")
            if not isinstance(chars, str) or not chars.startswith(BOUNDARY):
                raise ValueError("the vocabulary does not start with the boundary")
            model = cls(chars[1:], **config)
            model.line_hashes = {int(h) for h in arrays["line_hashes"]}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: corrupted charlm model ({type(exc).__name__}: "
                             f"{exc})") from None
        load_layers(path, "charlm", arrays, model.named_layers)
        return model

    @property
    def named_layers(self):
        """The layers whose weights save() writes, by the prefix of their arrays."""
        return {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}


def _pad(encoded):
    """Frame and pad a list of encoded lines: time-major inputs, targets, mask (T, B)."""
    T = max(len(ids) for ids in encoded) + 1
    B = len(encoded)
    inputs = np.zeros((T, B), np.int64)
    targets = np.zeros((T, B), np.int64)
    mask = np.zeros((T, B), bool)
    for b, ids in enumerate(encoded):
        n = len(ids)
        inputs[1:n + 1, b] = ids
        targets[:n, b] = ids
        mask[:n + 1, b] = True
    return inputs, targets, mask


def _batches(count, batch_size, gen):
    """Endless index batches: a fresh random permutation of range(count) per epoch."""
    while True:
        order = gen.permutation(count)
        for start in range(0, count - batch_size + 1 if count >= batch_size else 1, batch_size):
            yield order[start:start + batch_size]


def train(model, lines, *, steps=2000, batch_size=32, lr=5e-3, clip=5.0, bptt=64,
          backend="fastrnn", seed=0, progress=None, sample_every=0, on_sample=None):
    """Train model on lines with Adam, gradient clipping and truncated BPTT.

    Each step takes the next window of ``bptt`` time steps of the current
    batch of ``batch_size`` lines (a new batch when the current one is used
    up; the recurrent state carries over between windows of one batch),
    runs forward and backward, clips the total gradient norm to ``clip`` and
    takes one Adam step with learning rate ``lr``.

    Parameters
    ----------
    model : CharLM
    lines : list of str
    steps, batch_size, lr, clip, bptt : training settings
    backend : {"fastrnn", "reference"}
        Run the recurrent stack with the compiled kernels or with
        fastrnn.reference (same maths, NumPy loops), to compare speeds.
    seed : int
        Seeds the order of the batches.
    progress : callable(step, steps, running_loss, chars_per_s) or None
        Called after every step; running_loss is the mean loss of the last
        100 steps.
    sample_every, on_sample : int, callable(step) or None
        Call on_sample every sample_every steps (its time is not counted).

    Returns
    -------
    dict with steps, chars (predicted characters), seconds (training time),
    chars_per_s, first_loss, running_loss.
    """
    if not lines:
        raise ValueError("lines: expected at least one line")
    encoded = [model.encode(line, "lines") for line in lines]
    model.line_hashes.update(_line_hash(line) for line in lines)
    rnn = model.backend(backend)
    opt = Adam(model.layers, lr=lr)
    gen = np.random.default_rng(seed)
    batches = _batches(len(encoded), min(batch_size, len(encoded)), gen)
    recent = collections.deque(maxlen=100)
    first_loss = None
    chars, seconds, step = 0, 0.0, 0
    with single_threaded_blas():   # small products: BLAS threads only get in the way
        while step < steps:
            t0 = time.perf_counter()
            inputs, targets, mask = _pad([encoded[i] for i in next(batches)])
            state = None
            seconds += time.perf_counter() - t0
            for w in range(0, inputs.shape[0], bptt):
                if step >= steps:
                    break
                t0 = time.perf_counter()
                window = slice(w, w + bptt)
                opt.zero_grad()
                loss, state = model.train_step(inputs[window], targets[window], mask[window],
                                               state, rnn)
                clip_grad_norm([layer.grads for layer in model.layers], clip)
                opt.step()
                seconds += time.perf_counter() - t0
                chars += int(mask[window].sum())
                step += 1
                recent.append(loss)
                if first_loss is None:
                    first_loss = loss
                if progress is not None:
                    progress(step, steps, float(np.mean(recent)), chars / max(seconds, 1e-9))
                if on_sample is not None and sample_every and step % sample_every == 0:
                    on_sample(step)
    return dict(steps=step, chars=chars, seconds=seconds, chars_per_s=chars / max(seconds, 1e-9),
                first_loss=first_loss, running_loss=float(np.mean(recent)))
