"""The word-level language model (fastrnn.apps.wordlm) and ``python -m fastrnn wordlm``."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn.apps import wordlm

# the CLI in a subprocess imports this very fastrnn, whatever is installed
_ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastrnn.__file__)))

NOUNS = "cat dog bird fish cow horse mouse frog".split()
VERBS = "sees likes chases finds eats follows".split()
PLACES = "garden house river field barn hill".split()


def toy_text(paragraphs, seed):
    """Sentences of a small grammar: word order predictable, words evenly used."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(3):
            a, b = rng.choice(NOUNS, 2, replace=False)
            sentences.append(f"the {a} {rng.choice(VERBS)} the {b} in the "
                             f"{rng.choice(PLACES)} .")
        out.append(" ".join(sentences))
    return "\n\n".join(out)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wordlm") / "toy.txt"
    path.write_text(toy_text(300, 0), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus_file):
    docs = wordlm.read_corpus(corpus_file)
    train_words, held = wordlm.split_corpus(docs)
    vocab = wordlm.Vocabulary.build(train_words)
    model = wordlm.WordLM(vocab, embedding_dim=16, hidden1=32, hidden2=24, seed=0)
    tr, he = vocab.encode(train_words), vocab.encode(held)
    result = wordlm.train(model, tr, he, steps=250, bptt=10, batch_size=8, lr=1e-2)
    return model, result, wordlm.unigram_perplexity(tr, he, len(vocab))


def test_training_lowers_held_out_perplexity_well_below_unigram(trained):
    model, result, unigram = trained
    assert len(model.vocab) == 2 + len(NOUNS + VERBS + PLACES) + 3    # the, in, "."
    assert result["held_out_perplexity"] < 0.5 * unigram
    assert result["running_loss"] < math.log(unigram)
    # a window at the end of the streams is shorter, then the streams start again
    assert 0.9 * 250 * 10 * 8 < result["tokens"] <= 250 * 10 * 8
    assert result["tokens_per_s"] > 0


def test_sampling_is_reproducible_by_seed(trained):
    model = trained[0]
    a = model.sample(15, rng=3, temperature=0.8, top_k=10)
    assert a == model.sample(15, rng=3, temperature=0.8, top_k=10)
    assert a != model.sample(15, rng=4, temperature=0.8, top_k=10)
    assert len(a) == 15 and set(a) <= set(model.vocab.words)
    assert model.sample(5, prefix=["the", "cat"], top_p=0.9, rng=1) == \
        model.sample(5, prefix=["the", "cat"], top_p=0.9, rng=1)


def test_save_and_load(trained, tmp_path):
    model = trained[0]
    path = tmp_path / "m.npz"
    model.save(path)
    back = wordlm.WordLM.load(path)
    assert back.vocab.words == model.vocab.words
    assert back.sample(10, rng=2) == model.sample(10, rng=2)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        wordlm.WordLM.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(format_version=np.array(99)), "wordlm format version 99"),
    (lambda a: a.update(format=np.array("fastrnn-charlm")), "not a fastrnn wordlm model"),
    (lambda a: a.pop("vocab"), "corrupted wordlm model"),
    (lambda a: a.pop(next(k for k in a if k.startswith("net."))), "corrupted wordlm model"),
])
def test_load_rejects_altered_files(trained, tmp_path, change, message):
    good = tmp_path / "m.npz"
    trained[0].save(good)
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    bad = tmp_path / "altered.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=message):
        wordlm.WordLM.load(bad)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"  \n\n ", "empty"),
    (b"\x00\x01\x02binary\x00", "binary"),
    ("caf\u00e9 ol\u00e9".encode("latin-1"), "not UTF-8"),
    (b"!!! ??? ...\n", None),     # punctuation only is still words; see tokenize
])
def test_bad_corpus_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "c.txt"
    path.write_bytes(content)
    if message is None:
        assert wordlm.read_corpus(path)
        return
    with pytest.raises(ValueError, match=message):
        wordlm.read_corpus(path)


def test_vocabulary_is_capped_with_unknown_words():
    words = [f"w{i}" for i in range(50) for _ in range(50 - i)]
    vocab = wordlm.Vocabulary.build(words, max_size=10)
    assert len(vocab) == 10 and vocab.words[:3] == ["<unk>", "<eos>", "w0"]
    assert vocab.encode(["w0", "w49", "nope"]).tolist() == [2, 0, 0]


def test_stdlib_corpus_needs_no_file():
    docs = wordlm.stdlib_corpus(max_words=3000)
    words = [w for d in docs for w in d]
    assert len(words) >= 3000 and all(doc[-1] == wordlm.EOS for doc in docs)
    assert {"the", "a", "of"} <= set(words)


def test_cli_train_and_sample(corpus_file, tmp_path):
    out = tmp_path / "cli.npz"
    run = subprocess.run([sys.executable, "-m", "fastrnn", "wordlm", "train", "--corpus",
                          str(corpus_file), "--steps", "30", "--batch", "6", "--bptt", "8",
                          "--embedding", "8", "--hidden1", "12", "--hidden2", "10",
                          "--eval-every", "15", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, env=_ENV)
    assert run.returncode == 0, run.stderr
    assert "held-out perplexity" in run.stdout and "unigram" in run.stdout
    assert "step 15:" in run.stdout and out.is_file()
    s = subprocess.run([sys.executable, "-m", "fastrnn", "wordlm", "sample", str(out), "--n",
                        "2", "--words", "6", "--seed", "1", "--top-k", "5"],
                       capture_output=True, text=True, timeout=60, env=_ENV)
    assert s.returncode == 0, s.stderr
    lines = s.stdout.strip().splitlines()
    assert len(lines) == 2 and all(len(line.split()) == 6 for line in lines)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00")
    r = subprocess.run([sys.executable, "-m", "fastrnn", "wordlm", "train", "--corpus",
                        str(bad)], capture_output=True, text=True, timeout=60, env=_ENV)
    assert r.returncode == 2 and "corpus" in r.stderr
