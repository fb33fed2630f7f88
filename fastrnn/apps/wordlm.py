"""Word-level language model: Embedding 200 -> LSTM 256 -> LSTM 128 -> softmax over words.

The corpus is one stream of words (each paragraph closed by the token
"<eos>"), cut into B parallel streams that are read T words at a time::

    e_t      = E[w_t]                                  (Embedding, 200)
    h1_t     = LSTM_256(e_t, h1_{t-1})
    h2_t     = LSTM_128(h1_t, h2_{t-1})
    p(w_{t+1} | w_1..w_t) = softmax(W h2_t + b)        (Linear, V words)
    loss     = mean over the window of -log p(w_{t+1} | ...)

Training is truncated backpropagation through time over windows of T = 20
words of B = 60 streams, the LSTM states carried from one window to the
next, with Adam and gradient clipping; perplexity = exp(loss) on a held-out
part of the corpus.  The vocabulary holds the most frequent words of the
training part, capped at 10,000 with "<unk>" for the rest.

With no corpus file the corpus is gathered at run time from the docstrings
of the Python standard library of the running interpreter (read with ast,
nothing imported or downloaded): see stdlib_corpus().

``python -m fastrnn wordlm train|sample`` (fastrnn.apps.cli) drives this module.
"""

import ast
import collections
import json
import math
import os
import re
import sysconfig
import time

import numpy as np

from fastrnn.layers.chain import Chain
from fastrnn.layers.embedding import Embedding
from fastrnn.layers.linear import Linear
from fastrnn.layers.lstm import LSTM
from fastrnn.runtime.blas_threads import single_threaded_blas
from fastrnn.training.clip import clip_grad_norm
from fastrnn.training.optim import Adam
from fastrnn.training.sampling import as_generator, sample
from fastrnn.apps.seqtools import read_archive

__all__ = ["WordLM", "Vocabulary", "tokenize", "stdlib_corpus", "read_corpus", "split_corpus",
           "train", "perplexity", "UNK", "EOS"]

UNK, EOS = "<unk>", "<eos>"
_FORMAT = "fastrnn-wordlm"
_FORMAT_VERSION = 1
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[.,;:!?()\"]")


def tokenize(text):
    """The words of text, lower-cased, with punctuation marks as words of their own; each
    paragraph (text between blank lines) closed by EOS."""
    words = []
    for paragraph in re.split(r"\n\s*\n", text):
        tokens = _WORD.findall(paragraph.lower())
        if tokens:
            words.extend(tokens)
            words.append(EOS)
    return words


def stdlib_corpus(max_words=400_000):
    """Words of the docstrings of the Python standard library installed with this Python.

    The .py files under sysconfig's "stdlib" path (tests, site-packages and
    idlelib left out) are parsed with ast, in sorted order, and the
    docstrings of modules, classes and functions tokenized until max_words
    words.  Nothing is imported, so no module's side effects run.  Returns a
    list of documents, each a list of words.
    """
    root = sysconfig.get_paths()["stdlib"]
    skip = {"test", "tests", "site-packages", "idlelib", "lib2to3", "__pycache__"}
    docs, count = [], 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                    text = ast.get_docstring(node)
                    words = tokenize(text) if text else []
                    if len(words) > 3:
                        docs.append(words)
                        count += len(words)
                        if count >= max_words:
                            return docs
    if not docs:
        raise ValueError(f"corpus: found no docstrings under {root}")
    return docs


def read_corpus(path):
    """Documents (lists of words) of a UTF-8 text file, one document per paragraph.

    Raises ValueError naming the file when it is empty, binary (holds NUL
    bytes) or not UTF-8, or has no words.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise ValueError(f"corpus: {path} is empty")
    if b"\0" in raw:
        raise ValueError(f"corpus: {path} looks binary (it holds NUL bytes); expected UTF-8 "
                         f"text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"corpus: {path} is not UTF-8 text (byte {exc.start}: "
                         f"{exc.reason})") from None
    docs = []
    for paragraph in re.split(r"\n\s*\n", text):
        words = tokenize(paragraph)
        if words:
            docs.append(words)
    if not docs:
        raise ValueError(f"corpus: {path} has no words")
    return docs


def split_corpus(docs, held_out=0.1):
    """(train, held-out) word lists: every round(1 / held_out)-th document held out."""
    every = max(2, round(1 / held_out))
    train_words, held = [], []
    for i, doc in enumerate(docs):
        (held if i % every == every - 1 else train_words).extend(doc)
    if not held:                 # too few documents: hold out the stream's tail
        cut = max(1, len(train_words) // every)
        train_words, held = train_words[:-cut], train_words[-cut:]
    return train_words, held


class Vocabulary:
    """Words <-> ids: id 0 is UNK, id 1 is EOS, then words by falling count (ties by
    word), at most max_size in all."""

    def __init__(self, words):
        self.words = list(words)
        if self.words[:2] != [UNK, EOS] or len(set(self.words)) != len(self.words):
            raise ValueError("words: expected [<unk>, <eos>, ...] without repeats")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, words, max_size=10_000):
        counts = collections.Counter(w for w in words if w not in (UNK, EOS))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([UNK, EOS] + [w for w, _ in ranked[:max_size - 2]])

    def __len__(self):
        return len(self.words)

    def encode(self, words):
        return np.array([self.index.get(w, 0) for w in words], dtype=np.int64)

    def decode(self, ids):
        return [self.words[int(i)] for i in ids]


class WordLM:
    """Embedding -> LSTM -> LSTM -> Linear over a word vocabulary (a fastrnn.Chain).

    Parameters
    ----------
    vocab : Vocabulary
    embedding_dim, hidden1, hidden2 : int, default 200, 256, 128
    dtype : float32 or float64
    seed : int or None
    """

    def __init__(self, vocab, *, embedding_dim=200, hidden1=256, hidden2=128,
                 dtype=np.float32, seed=None):
        self.vocab = vocab
        V = len(vocab)
        s = np.random.default_rng(seed).integers(2**63, size=4)
        self.net = Chain(Embedding(V, embedding_dim, dtype=dtype, seed=s[0]),
                         LSTM(embedding_dim, hidden1, dtype=dtype, seed=s[1]),
                         LSTM(hidden1, hidden2, dtype=dtype, seed=s[2]),
                         Linear(hidden2, V, dtype=dtype, seed=s[3]))
        self.net.layers[-1].keep_packed = True     # weights change only through Adam

    def config(self):
        emb, l1, l2, _ = self.net.layers
        return dict(embedding_dim=emb.embedding_dim, hidden1=l1.hidden_size,
                    hidden2=l2.hidden_size, dtype=emb.dtype.name)

    def num_parameters(self):
        return sum(p.size for p in self.net.params.values())

    def __repr__(self):
        return f"WordLM({self.net!r}, {self.num_parameters():,} parameters)"

    def train_step(self, inputs, targets, states=None):
        """Forward and backward over one (T, B) window; returns (loss, states)."""
        # the output layer and the loss as one job: the logits are never returned
        return self.net.softmax_cross_entropy(inputs, targets, states)

    def score(self, inputs, targets, states=None):
        """Inference over one window: (mean -log p of the targets, states)."""
        return self.net.softmax_cross_entropy(inputs, targets, states, backward=False)

    def sample(self, n_words=30, *, prefix=(), temperature=1.0, top_k=None, top_p=None,
               rng=None):
        """Draw n_words words after EOS + prefix, each by fastrnn.sample."""
        gen = as_generator(rng)
        ids = np.concatenate([[1], self.vocab.encode(prefix)]).astype(np.int64)
        logits, states = self.net(ids[:, None])
        logits = logits[-1]
        out = []
        for _ in range(n_words):
            token = int(np.atleast_1d(sample(logits, temperature=temperature, top_k=top_k,
                                             top_p=top_p, rng=gen))[0])
            out.append(token)
            logits, states = self.net(np.array([[token]]), states)
            logits = logits[-1]
        return self.vocab.decode(out)

    def save(self, path):
        """An .npz file with the configuration, the vocabulary and the weights; no pickle."""
        arrays = {"format": np.array(_FORMAT), "format_version": np.array(_FORMAT_VERSION),
                  "config": np.array(json.dumps(self.config())),
                  "vocab": np.array(self.vocab.words)}
        arrays.update({f"net.{k}": v for k, v in self.net.params.items()})
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read a model written by save() (allow_pickle=False)."""
        config, arrays = read_archive(path, _FORMAT, _FORMAT_VERSION, name="wordlm")
        try:
            model = cls(Vocabulary([str(w) for w in arrays["vocab"]]), **config)
            model.net.load_state_dict({k[4:]: v for k, v in arrays.items()
                                       if k.startswith("net.")})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: corrupted wordlm model ({exc})") from None
        return model


def streams(ids, batch_size):
    """ids cut into batch_size equal streams, time-major (L, B); the rest dropped."""
    L = len(ids) // batch_size
    if L < 2:
        raise ValueError(f"corpus: {len(ids)} words are too few for {batch_size} streams")
    return np.ascontiguousarray(ids[:L * batch_size].reshape(batch_size, L).T)


def perplexity(model, ids, *, bptt=20, batch_size=60):
    """exp(mean -log p) of the stream ids, read as in training (states carried)."""
    data = streams(ids, min(batch_size, max(1, len(ids) // (bptt + 1))))
    total, count, states = 0.0, 0, None
    for w in range(0, data.shape[0] - 1, bptt):
        x = data[w:w + bptt]
        y = data[w + 1:w + 1 + bptt]
        x = x[:len(y)]
        loss, states = model.score(x, y, states)
        total += loss * y.size
        count += y.size
    return math.exp(total / count)


def unigram_perplexity(train_ids, held_ids, V):
    """Perplexity of held_ids under the training words' frequencies (add-one smoothed)."""
    counts = np.bincount(train_ids, minlength=V) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-float(np.mean(logp[held_ids])))


def train(model, train_ids, held_ids, *, steps=1000, bptt=20, batch_size=60, lr=2e-3,
          clip=5.0, seed=0, progress=None, eval_every=0, on_eval=None):
    """Train with truncated BPTT over B streams of the training words, Adam and clipping.

    Each step takes the next window of bptt words of every stream (from the
    start again, with fresh states, at the end of the streams), carrying the
    LSTM states across windows.  Every eval_every steps on_eval(step,
    held-out perplexity) is called (not counted in the time).

    Returns a dict: steps, tokens, seconds, tokens_per_s, first_loss,
    running_loss, held_out_perplexity.
    """
    data = streams(train_ids, batch_size)
    opt = Adam(model.net, lr=lr)
    recent = collections.deque(maxlen=50)
    first, tokens, seconds, states, w = None, 0, 0.0, None, 0
    with single_threaded_blas():
        for step in range(1, steps + 1):
            if w + 1 >= data.shape[0]:
                w, states = 0, None
            t0 = time.perf_counter()
            y = data[w + 1:w + 1 + bptt]
            x = data[w:w + len(y)]
            model.net.zero_grad()
            loss, states = model.train_step(x, y, states)
            clip_grad_norm(model.net.grads, clip)
            opt.step()
            seconds += time.perf_counter() - t0
            w += len(y)
            tokens += y.size
            recent.append(loss)
            first = loss if first is None else first
            if progress is not None:
                progress(step, steps, float(np.mean(recent)), tokens / max(seconds, 1e-9))
            if on_eval is not None and eval_every and step % eval_every == 0:
                on_eval(step, perplexity(model, held_ids, bptt=bptt, batch_size=batch_size))
        held = perplexity(model, held_ids, bptt=bptt, batch_size=batch_size)
    return dict(steps=steps, tokens=tokens, seconds=seconds,
                tokens_per_s=tokens / max(seconds, 1e-9), first_loss=first,
                running_loss=float(np.mean(recent)), held_out_perplexity=held)
