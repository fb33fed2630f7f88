"""Date translation with attention: "3rd of May 1979" -> "1979-05-03".

The lecture notes' machine-translation exercise, on dates written in many human
formats generated with Python's datetime (nothing is downloaded).  The model is an
encoder-decoder with Bahdanau's additive attention score, applied after the decoder
step (Luong's order)::

    e_j   = E_in[x_j]                                 (Embedding)
    h_j   = [LSTM_fwd(e)_j ; LSTM_bwd(e)_j]           (bidirectional fastrnn.LSTM)
    k_j   = U h_j                                     (Linear, no bias)
    s_i   = LSTMCell(E_out[y_{i-1}], s_{i-1})         (fastrnn.LSTMCell, y_0 = <start>)
    a_ij  = softmax_j(v . tanh(W s_i + b + k_j))      (Linear + fastrnn.AdditiveAttention)
    c_i   = sum_j a_ij h_j
    p(y_i | y_<i, x) = softmax(V [s_i ; c_i] + b_V)   (Linear)

Training is teacher forcing (the decoder reads the true previous character),
cross-entropy over the 10 output characters YYYY-MM-DD, Adam and gradient
clipping; the decoder runs step by step with the cell's forward and backward,
the attention and the output layer over the 10 steps at once.  Translation is
greedy (batched) or beam search (fastrnn.beam_search over the decoder's state).

``python -m fastrnn dates train|translate`` (fastrnn.apps.cli) drives this module.
"""

import datetime

import numpy as np

from fastrnn.apps import seqtools
from fastrnn.layers.attention import AdditiveAttention
from fastrnn.layers.cells import LSTMCell
from fastrnn.layers.embedding import Embedding
from fastrnn.layers.linear import Linear
from fastrnn.layers.lstm import LSTM
from fastrnn.training.decoding import beam_search
from fastrnn.training.loss import log_softmax, softmax_cross_entropy

__all__ = ["DateTranslator", "format_date", "make_dataset", "held_out_dates", "train",
           "accuracy", "plot_attention", "FIRST", "LAST"]

FIRST, LAST = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
IN_CHARS = " ,-./0123456789abcdefghijklmnopqrstuvwxyz"     # token i + 1; 0 is padding
OUT_CHARS = "0123456789-"                                  # token i; len(OUT_CHARS) = <start>
OUT_LEN = 10
MAX_IN_LEN = 40
_FORMAT, _FORMAT_VERSION = "dates", 1
# the settings of ``python -m fastrnn dates train``, and those --quick changes
DEFAULTS = dict(steps=1000, batch=64, lr=3e-3, clip=5.0, seed=0, hidden=128, held_out=2000)
QUICK = dict(steps=160, held_out=200)

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(n):
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# Each format is a function of (date, month name, weekday name).  Numeric formats
# keep one convention per separator: dots are day first, slashes month first (US).
_FORMATS = (
    lambda d, m, w: f"{d.day} {m} {d.year}",
    lambda d, m, w: f"{d.day:02d} {m} {d.year}",
    lambda d, m, w: f"{_ordinal(d.day)} of {m} {d.year}",
    lambda d, m, w: f"the {_ordinal(d.day)} of {m}, {d.year}",
    lambda d, m, w: f"{m} {d.day}, {d.year}",
    lambda d, m, w: f"{m} {_ordinal(d.day)}, {d.year}",
    lambda d, m, w: f"{m} {d.day:02d} {d.year}",
    lambda d, m, w: f"{w}, {m} {d.day}, {d.year}",
    lambda d, m, w: f"{w} {_ordinal(d.day)} {m} {d.year}",
    lambda d, m, w: f"{w[:3]} {d.day} {m[:3]} {d.year}",
    lambda d, m, w: f"{d.day} {m[:3]} {d.year}",
    lambda d, m, w: f"{m[:3]} {d.day}, {d.year}",
    lambda d, m, w: f"{m[:3]}. {_ordinal(d.day)} {d.year}",
    lambda d, m, w: f"{d.day:02d}.{d.month:02d}.{d.year}",
    lambda d, m, w: f"{d.day}.{d.month}.{d.year}",
    lambda d, m, w: f"{d.month:02d}/{d.day:02d}/{d.year}",
    lambda d, m, w: f"{d.month}/{d.day}/{d.year}",
    lambda d, m, w: f"{d.year}/{d.month:02d}/{d.day:02d}",
    lambda d, m, w: f"{d.year}-{d.month}-{d.day}",
    lambda d, m, w: f"{d.year}, {m} {d.day}",
)
NUM_FORMATS = len(_FORMATS)


def format_date(date, style, case="lower"):
    """date written in format number style (0 <= style < NUM_FORMATS); case "lower",
    "title" or "upper"."""
    text = _FORMATS[style](date, _MONTHS[date.month - 1], _DAYS[date.weekday()])
    return {"lower": text.lower(), "title": text, "upper": text.upper()}[case]


def _date(day_number):
    return FIRST + datetime.timedelta(days=int(day_number))


def _day_split(held_out, seed):
    """(training day numbers, held-out day numbers): every day of FIRST..LAST in one or
    the other, so that no held-out date is ever trained on in any format."""
    count = (LAST - FIRST).days + 1
    return seqtools.held_out_split(count, held_out, seed)


def make_dataset(days, rng):
    """(texts, targets) for the day numbers days, each in a random format and case."""
    styles = rng.integers(NUM_FORMATS, size=len(days))
    cases = rng.choice(("lower", "title", "upper"), size=len(days), p=(0.4, 0.4, 0.2))
    dates = [_date(d) for d in days]
    texts = [format_date(d, int(s), str(c)) for d, s, c in zip(dates, styles, cases)]
    return texts, [d.isoformat() for d in dates]


def held_out_dates(held_out=2000, seed=0):
    """The held-out (texts, targets): held_out dates never used in training, in a random
    order, each in a random format (the same for the same seed)."""
    _, days = _day_split(held_out, seed)
    gen = np.random.default_rng([seed, 1])
    return make_dataset(gen.permutation(days), gen)


class DateTranslator(seqtools.SavedModel):
    """Encoder-decoder with attention from human-readable dates to YYYY-MM-DD (module
    docstring for the equations).

    Parameters
    ----------
    embedding_dim : int, default 32
        Size of the input characters' embedding (the output characters' is half).
    encoder_size : int, default 64
        Hidden size of each direction of the bidirectional encoder.
    decoder_size : int, default 128
    attention_dim : int, default 64
    dtype : float32 or float64
    seed : int or None
    """

    FORMAT, FORMAT_VERSION = _FORMAT, _FORMAT_VERSION

    def __init__(self, *, embedding_dim=32, encoder_size=64, decoder_size=128, attention_dim=64,
                 dtype=np.float32, seed=None):
        self.config = dict(embedding_dim=embedding_dim, encoder_size=encoder_size,
                           decoder_size=decoder_size, attention_dim=attention_dim,
                           dtype=np.dtype(dtype).name)
        s = np.random.default_rng(seed).integers(2**63, size=8)
        enc = 2 * encoder_size
        out_dim = max(1, embedding_dim // 2)
        self.embed_in = Embedding(len(IN_CHARS) + 1, embedding_dim, dtype=dtype, seed=s[0])
        self.encoder = LSTM(embedding_dim, encoder_size, bidirectional=True, dtype=dtype,
                            seed=s[1])
        self.key = Linear(enc, attention_dim, bias=False, dtype=dtype, seed=s[2])
        self.embed_out = Embedding(len(OUT_CHARS) + 1, out_dim, dtype=dtype, seed=s[3])
        self.decoder = LSTMCell(out_dim, decoder_size, dtype=dtype, seed=s[4])
        self.query = Linear(decoder_size, attention_dim, dtype=dtype, seed=s[5])
        self.attention = AdditiveAttention(attention_dim, dtype=dtype, seed=s[6])
        self.head = Linear(decoder_size + enc, len(OUT_CHARS), dtype=dtype, seed=s[7])
        self.dtype = self.encoder.dtype

    @property
    def named_layers(self):
        return {"embed_in": self.embed_in, "encoder": self.encoder, "key": self.key,
                "embed_out": self.embed_out, "decoder": self.decoder, "query": self.query,
                "attention": self.attention, "head": self.head}

    @property
    def layers(self):
        return list(self.named_layers.values())

    def num_parameters(self):
        return sum(p.size for layer in self.layers for p in layer.params.values())

    def __repr__(self):
        c = self.config
        return (f"DateTranslator(BiLSTM {c['embedding_dim']} -> 2x{c['encoder_size']}, "
                f"additive attention {c['attention_dim']}, LSTMCell {c['decoder_size']}, "
                f"{self.num_parameters():,} parameters, {c['dtype']})")

    # ------------------------------------------------------------ encoding

    @staticmethod
    def encode(texts, name="text"):
        """Padded time-major tokens (T, B), lengths (B,) of the texts (lower-cased)."""
        ids = []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"{name}: expected a string, got {type(text).__name__}")
            t = " ".join(text.lower().split())
            bad = [ch for ch in t if ch not in IN_CHARS]
            if bad:
                raise ValueError(f"{name}: character {bad[0]!r} of {text!r} is not one a date "
                                 f"is written with (letters, digits, space and , - . /)")
            if not 1 <= len(t) <= MAX_IN_LEN:
                raise ValueError(f"{name}: expected 1 to {MAX_IN_LEN} characters, got "
                                 f"{len(t)} in {text!r}")
            ids.append([IN_CHARS.index(ch) + 1 for ch in t])
        lengths = np.array([len(i) for i in ids], np.int64)
        x = np.zeros((lengths.max(), len(ids)), np.int64)
        for b, i in enumerate(ids):
            x[:len(i), b] = i
        return x, lengths

    @staticmethod
    def targets(isodates):
        """(decoder inputs (OUT_LEN, B) starting with <start>, targets (B, OUT_LEN))."""
        y = np.array([[OUT_CHARS.index(ch) for ch in d] for d in isodates], np.int64)
        inputs = np.concatenate([np.full((len(y), 1), len(OUT_CHARS)), y[:, :-1]], axis=1)
        return inputs.T.copy(), y

    def _memory(self, x, lengths):
        """Inference encoder: values (B, T, 2H), keys (B, T, A), mask (B, T)."""
        h, _ = self.encoder(self.embed_in(x), lengths=lengths)
        values = np.ascontiguousarray(h.transpose(1, 0, 2))
        mask = np.arange(x.shape[0])[None, :] < lengths[:, None]
        return values, self.key(values), mask

    # ------------------------------------------------------------ training

    def train_step(self, texts, isodates):
        """Forward and backward over a batch (teacher forcing); adds into every layer's
        grads and returns the mean cross-entropy per output character."""
        x, lengths = self.encode(texts)
        y_in, y = self.targets(isodates)
        e, c_ein = self.embed_in.forward(x)
        h, _, c_enc = self.encoder.forward(e, None, lengths)
        values = np.ascontiguousarray(h.transpose(1, 0, 2))               # (B, T, 2H)
        keys, c_key = self.key.forward(values)
        mask = np.arange(x.shape[0])[None, :] < lengths[:, None]
        d_emb, c_eout = self.embed_out.forward(y_in)                      # (10, B, E)
        state, states, c_steps = None, [], []
        for t in range(OUT_LEN):
            state, c = self.decoder.forward(d_emb[t], state)
            states.append(state[0])
            c_steps.append(c)
        s = np.stack(states, axis=1)                                      # (B, 10, Hd)
        q, c_q = self.query.forward(s)
        context, _, c_att = self.attention.forward(q, values, key=keys, value_mask=mask)
        logits, c_head = self.head.forward(np.concatenate([s, context], axis=2))
        loss, dlogits = softmax_cross_entropy(logits, y)

        dfeat = self.head.backward(dlogits, c_head)
        Hd = s.shape[2]
        dq, dvalues, dkeys = self.attention.backward(dfeat[:, :, Hd:], c_att)
        ds = dfeat[:, :, :Hd] + self.query.backward(dq, c_q)
        dvalues = dvalues + self.key.backward(dkeys, c_key)
        dd_emb = np.empty_like(d_emb)
        dh = np.zeros_like(ds[:, 0])
        dc = np.zeros_like(dh)
        for t in reversed(range(OUT_LEN)):
            dd_emb[t], (dh, dc) = self.decoder.backward((ds[:, t] + dh, dc), c_steps[t])
        self.embed_out.backward(dd_emb, c_eout)
        de, _ = self.encoder.backward(dvalues.transpose(1, 0, 2), c_enc)
        self.embed_in.backward(de, c_ein)
        return loss

    # ---------------------------------------------------------- translation

    def _scores(self, state, values, keys, mask):
        """log p of the next character (K, V) and the attention (K, T) after decoder state."""
        q = self.query(state[0][:, None, :])
        context, weights = self.attention(q, values, key=keys, value_mask=mask)
        logits = self.head(np.concatenate([state[0], context[:, 0]], axis=1))
        return log_softmax(logits), weights[:, 0]

    def translate(self, texts, *, return_attention=False):
        """Greedy translation of a list of texts (one batch) to YYYY-MM-DD strings.

        With return_attention, also the attention weights (B, 10, T) of every output
        character over the input characters.
        """
        x, lengths = self.encode(texts, "texts")
        values, keys, mask = self._memory(x, lengths)
        B = len(texts)
        tokens = np.full(B, len(OUT_CHARS), np.int64)
        state, out, maps = None, [], []
        for _ in range(OUT_LEN):
            state = self.decoder(self.embed_out(tokens), state)
            lp, w = self._scores(state, values, keys, mask)
            tokens = lp.argmax(axis=1)
            out.append(tokens)
            maps.append(w)
        strings = ["".join(OUT_CHARS[t] for t in row) for row in np.stack(out, axis=1)]
        return (strings, np.stack(maps, axis=1)) if return_attention else strings

    def beam(self, text, beam_width):
        """The beam_width best translations of text by beam search: [(string, log p)]."""
        x, lengths = self.encode([text])
        values, keys, mask = self._memory(x, lengths)

        def step(tokens, state):
            K = len(tokens)
            cell_state = None if state is None else (state[0][0], state[1][0])
            h, c = self.decoder(self.embed_out(tokens), cell_state)
            lp, _ = self._scores((h, c), np.repeat(values, K, 0), np.repeat(keys, K, 0),
                                 np.repeat(mask, K, 0))
            return lp, (h[None], c[None])

        results = beam_search(step, None, len(OUT_CHARS), beam_width=beam_width,
                              max_len=OUT_LEN)
        return [("".join(OUT_CHARS[t] for t in seq), score) for seq, score in results]

    # ----------------------------------------------------------- save / load


def accuracy(model, texts, isodates, batch_size=500):
    """(exact-match accuracy, per-character accuracy) of greedy translation."""
    got = []
    for i in range(0, len(texts), batch_size):
        got += model.translate(texts[i:i + batch_size])
    exact = np.mean([g == r for g, r in zip(got, isodates)])
    chars = np.mean([a == b for g, r in zip(got, isodates) for a, b in zip(g, r)])
    return float(exact), float(chars)


def train(model, *, steps=1000, batch_size=64, lr=3e-3, clip=5.0, held_out=2000, seed=0,
          progress=None):
    """Train on freshly drawn dates (never a held-out one) with Adam and clipping.

    Every step draws batch_size training days and formats.  The learning rate decays
    linearly to a tenth of lr over the run.

    Returns
    -------
    dict with steps, seconds, examples_per_s, first_loss, running_loss (mean of the
    last 50 steps).
    """
    train_days, _ = _day_split(held_out, seed)
    gen = np.random.default_rng([seed, 2])
    return seqtools.train_loop(
        model, lambda: make_dataset(gen.choice(train_days, batch_size), gen), steps=steps,
        batch_size=batch_size, lr=lr, clip=clip, progress=progress)


def plot_attention(model, text, path):
    """Draw the attention map of the greedy translation of text as a PNG at path.

    Needs matplotlib (raises ImportError saying so).  Returns the translation.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("--plot needs matplotlib (pip install matplotlib, or "
                          "pip install 'fastrnn[examples]')") from None
    (out,), maps = model.translate([text], return_attention=True)
    shown = " ".join(text.lower().split())
    fig = Figure(figsize=(max(4.0, 0.28 * len(shown) + 1.5), 3.6), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(maps[0, :, :len(shown)], cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(shown)), [c if c != " " else "\u2423" for c in shown])
    ax.set_yticks(range(OUT_LEN), list(out))
    ax.set_xlabel("input character")
    ax.set_ylabel("output character")
    ax.set_title(f"{text!r} -> {out}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return out
