"""CTC transcription: strings of handwritten digits read column by column, no alignment.

A string of 1 to 8 of scikit-learn's 8x8 digit images is laid side by side, with
0 to 2 empty columns before, between and after the digits, and read column by
column: a sequence of T steps of 8 pixels.  A bidirectional LSTM and a linear
layer give, at every column, log-probabilities over the ten digits and the CTC
blank (class 10); connectionist temporal classification (fastrnn.ctc_loss) trains
the network from the digit strings alone, without saying which columns hold which
digit::

    h_t = [LSTM_fwd(x)_t ; LSTM_bwd(x)_t],   log p_t = log_softmax(W h_t + b)   (11 classes)
    loss = mean_n -log p(digits_n | x_n) / len(digits_n)     (sum over every alignment)

Decoding is greedy (best path) or prefix beam search (fastrnn.ctc_greedy_decode,
fastrnn.ctc_beam_search); the label error rate is the edit distance to the true
digits over their number, on strings made only of held-out images.

``python -m fastrnn ctcdigits train|read`` (fastrnn.apps.cli) drives this module; it needs
scikit-learn (``pip install 'fastrnn[examples]'``).
"""


import numpy as np

from fastrnn.apps import digits, seqtools
from fastrnn.layers.linear import Linear
from fastrnn.layers.lstm import LSTM
from fastrnn.training.ctc import ctc_beam_search, ctc_greedy_decode, ctc_loss
from fastrnn.training.loss import log_softmax

__all__ = ["make_strings", "pad", "DigitReader", "train", "label_error_rate", "BLANK"]

BLANK = 10
MAX_GAP = 2
_FORMAT, _FORMAT_VERSION = "ctcdigits", 1
# the settings of ``python -m fastrnn ctcdigits train``, and those --quick changes
DEFAULTS = dict(steps=3000, batch=32, lr=1e-2, clip=5.0, seed=0, hidden=64, layers=1,
                max_digits=8, strings=1000, beam=5)
QUICK = dict(steps=500, max_digits=3, strings=200)


def make_strings(images, labels, count, rng, *, min_digits=1, max_digits=8):
    """count random strings of digit images: (list of (T, 8) column sequences, list of
    digit lists).  Each string draws its length, its images and its gaps with rng."""
    sequences, targets = [], []
    for _ in range(count):
        k = int(rng.integers(min_digits, max_digits + 1))
        idx = rng.integers(len(labels), size=k)
        gaps = rng.integers(MAX_GAP + 1, size=k + 1)
        cols = [np.zeros((gaps[0], 8))]
        for i, g in zip(idx, gaps[1:]):
            cols += [images[i].T, np.zeros((g, 8))]   # columns of the image: (8 cols, 8 rows)
        sequences.append(np.concatenate(cols))
        targets.append([int(d) for d in labels[idx]])
    return sequences, targets


def pad(sequences):
    """Time-major (T, B, 8) zero-padded batch and lengths (B,)."""
    lengths = np.array([len(s) for s in sequences], np.int64)
    x = np.zeros((lengths.max(), len(sequences), 8))
    for b, s in enumerate(sequences):
        x[:len(s), b] = s
    return x, lengths


class DigitReader(seqtools.SavedModel):
    """Bidirectional LSTM + Linear to 11 classes (the ten digits and the blank, 10),
    trained with CTC (module docstring).

    Parameters
    ----------
    hidden_size : int, default 64
        Per direction.
    num_layers : int, default 1
    dtype : float32 or float64
    seed : int or None
    """

    FORMAT, FORMAT_VERSION = _FORMAT, _FORMAT_VERSION

    def __init__(self, *, hidden_size=64, num_layers=1, dtype=np.float32, seed=None):
        self.config = dict(hidden_size=hidden_size, num_layers=num_layers,
                           dtype=np.dtype(dtype).name)
        s = np.random.default_rng(seed).integers(2**63, size=2)
        self.rnn = LSTM(8, hidden_size, num_layers, bidirectional=True, dtype=dtype, seed=s[0])
        self.head = Linear(2 * hidden_size, 11, dtype=dtype, seed=s[1])

    @property
    def named_layers(self):
        return {"rnn": self.rnn, "head": self.head}

    @property
    def layers(self):
        return [self.rnn, self.head]

    def __repr__(self):
        n = sum(p.size for layer in self.layers for p in layer.params.values())
        return (f"DigitReader(BiLSTM 8 -> 2x{self.rnn.hidden_size} x {self.rnn.num_layers} "
                f"layer(s), Linear -> 11, {n:,} parameters)")

    def log_probs(self, sequences):
        """(log-probabilities (T, B, 11), lengths (B,)) of a list of (T_b, 8) sequences."""
        x, lengths = pad(sequences)
        y, _ = self.rnn(x, lengths=lengths)
        return log_softmax(self.head(y)), lengths

    def read(self, sequences, beam_width=None):
        """The digit strings read from sequences: greedy, or the best of a prefix beam
        search of beam_width."""
        lp, lengths = self.log_probs(sequences)
        if beam_width is None:
            return ctc_greedy_decode(lp, lengths, blank=BLANK)
        return [beams[0][0] for beams in ctc_beam_search(lp, lengths, beam_width=beam_width,
                                                          blank=BLANK)]

    def train_step(self, sequences, targets):
        """CTC forward and backward over a batch; adds into the grads, returns the loss."""
        x, lengths = pad(sequences)
        y, _, cache = self.rnn.forward(x, None, lengths)
        logits, head_cache = self.head.forward(y)
        lp = log_softmax(logits)
        flat = np.concatenate([np.asarray(t, np.int64) for t in targets])
        loss, dlp = ctc_loss(lp, flat, lengths, [len(t) for t in targets], blank=BLANK)
        # log_softmax's backward: dz = dlp - softmax(z) * sum_c dlp
        dlogits = dlp - np.exp(lp) * dlp.sum(axis=2, keepdims=True)
        dy = self.head.backward(dlogits, head_cache)
        self.rnn.backward(dy, cache)
        return loss


def label_error_rate(model, sequences, targets, beam_width=None, batch_size=250):
    """Edit distance over reference length of the model's readings of sequences."""
    got = []
    for i in range(0, len(sequences), batch_size):
        got += model.read(sequences[i:i + batch_size], beam_width)
    return seqtools.label_error_rate(targets, got)


def held_out_strings(count=1000, held_out_images=360, seed=0, max_digits=8):
    """count strings of 1 to max_digits digits made only of the held-out images of
    digits.split (the same for the same seed): (sequences, targets)."""
    *_, images, labels = digits.split(held_out_images, seed)
    return make_strings(images, labels, count, np.random.default_rng([seed, 1]),
                        max_digits=max_digits)


def train(model, *, steps=3000, batch_size=32, lr=1e-2, clip=5.0, held_out_images=360,
          seed=0, max_digits=8, progress=None):
    """Adam with clipping on freshly drawn strings of 1 to max_digits of the training
    images; the learning rate decays linearly to a tenth of lr.

    Returns dict with steps, seconds, examples_per_s, first_loss, running_loss.
    """
    images, labels, _, _ = digits.split(held_out_images, seed)
    gen = np.random.default_rng([seed, 2])
    return seqtools.train_loop(
        model, lambda: make_strings(images, labels, batch_size, gen, max_digits=max_digits),
        steps=steps, batch_size=batch_size, lr=lr, clip=clip, progress=progress)
