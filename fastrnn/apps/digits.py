"""Many-to-one classification: scikit-learn's bundled 8x8 digits, read row by row.

Each image of scikit-learn's ``load_digits`` (1,797 handwritten digits, 8x8 pixels
of 0..16, shipped with the package, nothing downloaded) is a sequence of 8 steps,
step t being row t of the image (8 features, scaled to [0, 1]).  An LSTM reads
the rows and a linear layer classifies the final state, or the mean of the
states over the rows::

    h_t    = LSTM(row_t, h_{t-1}),          t = 1..8
    f      = h_8  (pool="last")   or   (1/8) sum_t h_t  (pool="mean")
    p(y)   = softmax(W f + b)

trained with cross-entropy, Adam and gradient clipping on a seeded split; the
accuracy is measured on the held-out images.

``python -m fastrnn digits train|predict`` (fastrnn.apps.cli) drives this module;
it needs scikit-learn (``pip install 'fastrnn[examples]'``).
"""


import numpy as np

from fastrnn.apps import seqtools
from fastrnn.layers.linear import Linear
from fastrnn.layers.lstm import LSTM
from fastrnn.training.loss import softmax_cross_entropy

__all__ = ["load_images", "split", "DigitClassifier", "train", "POOLS"]

POOLS = ("last", "mean")
_FORMAT, _FORMAT_VERSION = "digits", 1
# the settings of ``python -m fastrnn digits train``, and those --quick changes
DEFAULTS = dict(steps=1500, batch=64, lr=5e-3, clip=5.0, seed=0, hidden=64, held_out=360)
QUICK = dict(steps=200)


def load_images():
    """(images (1797, 8, 8) float64 in [0, 1], labels (1797,) int64) of scikit-learn's digits.

    Raises ImportError saying how to install scikit-learn when it is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits examples need scikit-learn (pip install scikit-learn, "
                          "or pip install 'fastrnn[examples]')") from None
    data = load_digits()
    return data.images / 16.0, data.target.astype(np.int64)


def split(held_out=360, seed=0):
    """(train images, train labels, held-out images, held-out labels): a seeded split."""
    images, labels = load_images()
    tr, ho = seqtools.held_out_split(len(labels), held_out, seed)
    return images[tr], labels[tr], images[ho], labels[ho]


class DigitClassifier(seqtools.SavedModel):
    """LSTM over the rows of an image, then a linear classifier (module docstring).

    Parameters
    ----------
    hidden_size : int, default 64
    pool : {"last", "mean"}, default "last"
        Classify the final state, or the mean of the states over the rows.
    dtype : float32 or float64
    seed : int or None
    """

    FORMAT, FORMAT_VERSION = _FORMAT, _FORMAT_VERSION

    def __init__(self, *, hidden_size=64, pool="last", dtype=np.float32, seed=None):
        if pool not in POOLS:
            raise ValueError(f"pool: expected one of {POOLS}, got {pool!r}")
        self.pool = pool
        self.config = dict(hidden_size=hidden_size, pool=pool, dtype=np.dtype(dtype).name)
        s = np.random.default_rng(seed).integers(2**63, size=2)
        self.rnn = LSTM(8, hidden_size, dtype=dtype, seed=s[0])
        self.head = Linear(hidden_size, 10, dtype=dtype, seed=s[1])

    @property
    def named_layers(self):
        return {"rnn": self.rnn, "head": self.head}

    @property
    def layers(self):
        return [self.rnn, self.head]

    def __repr__(self):
        n = sum(p.size for layer in self.layers for p in layer.params.values())
        return (f"DigitClassifier(LSTM 8 -> {self.rnn.hidden_size}, pool {self.pool}, Linear "
                f"-> 10, {n:,} parameters)")

    @staticmethod
    def _sequences(images):
        """Images (B, 8, 8) as time-major row sequences (8, B, 8)."""
        arr = np.asarray(images)
        if arr.ndim != 3 or arr.shape[1:] != (8, 8):
            raise ValueError(f"images: expected shape (B, 8, 8), got shape {arr.shape}")
        return np.ascontiguousarray(arr.transpose(1, 0, 2))

    def _features(self, y):
        return y[-1] if self.pool == "last" else y.mean(axis=0)

    def logits(self, images):
        """Inference: class scores (B, 10)."""
        y, _ = self.rnn(self._sequences(images))
        return self.head(self._features(y))

    def predict(self, images):
        """The most probable class of each image (B,)."""
        return self.logits(images).argmax(axis=1)

    def accuracy(self, images, labels):
        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def train_step(self, images, labels):
        """Forward and backward over a batch; adds into the grads, returns the mean loss."""
        y, _, cache = self.rnn.forward(self._sequences(images))
        logits, head_cache = self.head.forward(self._features(y))
        loss, dlogits = softmax_cross_entropy(logits, labels)
        df = self.head.backward(dlogits, head_cache)
        dy = np.zeros_like(y)
        if self.pool == "last":
            dy[-1] = df
        else:
            dy[:] = df / y.shape[0]
        self.rnn.backward(dy, cache)
        return loss


def train(model, images, labels, *, steps=1500, batch_size=64, lr=5e-3, clip=5.0, seed=0,
          progress=None):
    """Adam with clipping on random batches (a fresh permutation every epoch); the
    learning rate decays linearly to a tenth of lr.

    Returns dict with steps, seconds, examples_per_s, first_loss, running_loss (mean of
    the last 50 steps).
    """
    gen = np.random.default_rng(seed)
    order = np.empty(0, np.int64)

    def next_batch():     # a fresh permutation every epoch
        nonlocal order
        if len(order) < batch_size:
            order = np.concatenate([order, gen.permutation(len(labels))])
        batch, order = order[:batch_size], order[batch_size:]
        return images[batch], labels[batch]

    return seqtools.train_loop(model, next_batch, steps=steps, batch_size=batch_size, lr=lr,
                               clip=clip, progress=progress)
