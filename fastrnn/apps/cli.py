"""Command line of fastrnn: ``python -m fastrnn {info,bench,charlm,wordlm,dates,digits,
ctcdigits}``."""

import argparse
import importlib
import json
import os
import platform
import sys
import time

import numpy as np

from fastrnn.layers.cell_kinds import KEYS


def _numpy_blas_report():
    """Lines on the BLAS that NumPy (not fastrnn) uses, and its threads."""
    try:
        import threadpoolctl
    except ImportError:
        return ["NumPy's BLAS: install threadpoolctl to see which one and its threads"]
    return [f"NumPy's BLAS: {pool['internal_api']} {pool.get('version')} "
            f"({pool.get('architecture', '?')}), {pool['num_threads']} threads"
            for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


def cmd_info(args):
    from fastrnn._version import __version__
    from fastrnn.kernels import COMPILED, elementwise, recurrent, threads
    from fastrnn.runtime import machine
    print(f"fastrnn {__version__}  ({os.path.dirname(os.path.dirname(threads.__file__))})")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    print("compiled modules:")
    for mod in (importlib.import_module(f"fastrnn.kernels.{name}") for name in COMPILED):
        print(f"  {mod.__name__}: {os.path.basename(mod.__file__)}")
    print("dtypes: float32, float64")
    print(f"element-wise and GEMM kernels: {elementwise.simd_target()}")
    machine_class, tile = recurrent.gemm_tile()
    print(f"GEMM register tile: {tile} ({machine_class})")
    for kind in ("int8", "bfloat16"):
        index, path = recurrent.reduced_path(kind)
        paths = list(recurrent.reduced_paths(kind).items())
        others = [name for name, ok in paths if ok and name != path]
        slower = [name for name, ok in paths[index + 1:] if ok]
        print(f"reduced precision: {kind} weights (frozen(weights={kind!r})) on {path}"
              + (f" (measured faster here than {', '.join(slower)})" if slower else "")
              + (f"; also runs {', '.join(others)}" if others else ""))
    print(f"threads: {threads.get_num_threads()} (fastrnn's own pool; "
          f"set with fastrnn.set_num_threads or FASTRNN_NUM_THREADS)")
    print("BLAS: not used by fastrnn's kernels (packed-weight GEMM of its own)")
    for line in _numpy_blas_report():
        print(f"  {line}")
    print(f"machine limits (measured now; caches {_cache_text(machine.cache_sizes())}):")
    for line in machine.describe(machine.limits()):
        print(f"  {line}")
    return 0


def _cache_text(caches):
    return ", ".join(f"{level} {nbytes >> 10} KiB" for level, nbytes in caches.items())


def _parse_shape(text):
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected T,B,D,H as four positive integers, got {text!r}")
    return tuple(int(p) for p in parts)


def cmd_bench_models(args):
    from fastrnn.apps import bench_models, peers
    if "torch" not in peers.available():
        return _bench_error("--models compares with PyTorch, which is not importable here")
    rows = bench_models.run(threads=args.threads, rounds=args.repeat)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"fastrnn bench --models: float32, {args.threads or 'default'} threads, median of "
          f"{args.repeat} round-robin rounds of about 30 ms of calls each (fastrnn / torch "
          f"below 1: faster)")
    print(bench_models.format_table(rows))
    return 0


def cmd_bench(args):
    if args.models:
        return cmd_bench_models(args)
    if args.reduced and not args.sweep:
        return cmd_bench_reduced(args)
    from fastrnn.apps import bench
    from fastrnn.apps import peers
    if args.sweep:
        return cmd_sweep(args)
    shapes = tuple(args.shape) if args.shape else (
        bench.QUICK_SHAPES if args.quick else
        bench.FULL_SHAPES if args.full else bench.DEFAULT_SHAPES)
    works = ("inference", "training") if args.work == "both" else (args.work,)
    have = peers.available()
    if args.peers:
        missing = [p for p in args.peers if p not in have]
        if missing:
            return _bench_error(f"--peers: {', '.join(missing)} not importable here "
                                f"(available: {', '.join(have)})")
        systems = ["fastrnn"] + [p for p in args.peers if p != "fastrnn"]
    else:
        systems = have
    show = sys.stderr.isatty() and not args.json
    progress = _progress_bar if show else None
    report = bench.run(cells=args.cell, shapes=shapes, dtype=np.dtype(args.dtype),
                       works=works, systems=systems, threads=args.threads,
                       repeats=args.repeat, budget=args.budget, progress=progress)
    if show:
        print(file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        m = report["machine"]
        print(f"fastrnn bench: {m['dtype']}, {m['threads']} threads for every system, "
              f"median of up to {args.repeat} round-robin rounds; element-wise kernels "
              f"{m['simd']}")
        _print_limits(m)
        print("fr/<peer> = fastrnn time / peer time (below 1: fastrnn is faster); roof% = "
              "the roofline's time / fastrnn's time, bound = what sets the roofline (FMA "
              "peak, or the level holding the recurrent weights)")
        print(bench.format_table(report))
        if not (args.full or args.shape or args.quick):
            print("\nThis was a first look (three shapes). The whole table: python -m fastrnn "
                  "bench --full; every batch and hidden size: python -m fastrnn bench --sweep")
    if args.plot:
        try:
            bench.plot(report, args.plot)
        except ImportError:
            return _bench_error("--plot needs matplotlib (pip install matplotlib)")
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _progress_bar(done, total, label):
    bar = "#" * (30 * done // total)
    print(f"\r[{bar:<30}] {done}/{total} {label:<40}", end="", file=sys.stderr, flush=True)


def _print_limits(m):
    lim = m["limits"]
    reads = ", ".join(f"{level} {gbs:.0f}" for level, gbs in lim["read_gbs_all"].items())
    print(f"machine: FMA peak {lim['fma_gflops_all']:.0f} GFLOP/s on {lim['threads']} "
          f"threads; read GB/s on {lim['threads']} threads: {reads}; NumPy's sgemm "
          f"{m['sgemm_gflops']:.0f} GFLOP/s (a peer, not the yardstick)")


def cmd_bench_reduced(args):
    from fastrnn.apps import bench_reduced
    show = sys.stderr.isatty() and not args.json
    quick = args.quick
    report = bench_reduced.run(bench_reduced.QUICK_GRID if quick else bench_reduced.FULL_GRID,
                            threads=args.threads, repeats=args.repeat, budget=args.budget,
                            progress=_progress_bar if show else None)
    errors = (bench_reduced.accuracy(models=3, T=5, D=16, H=32) if quick
              else bench_reduced.accuracy())
    trained = (bench_reduced.trained_charlm(steps=20, hidden_size=32) if quick
               else bench_reduced.trained_charlm(steps=1000))
    words = (bench_reduced.trained_wordlm(steps=3, max_words=20_000) if quick
             else bench_reduced.trained_wordlm(steps=500))
    if show:
        print(file=sys.stderr)
    if args.json:
        json.dump(dict(report, errors=errors, charlm=trained, wordlm=words), sys.stdout,
                  indent=1)
        print()
        return 0
    m = report["machine"]
    print(f"fastrnn bench --reduced: {m['threads']} threads for every system, D = H, median "
          f"of up to {args.repeat} round-robin rounds; int8 products on {m['int8_path']}, "
          f"bfloat16 on {m['bfloat16_path']}")
    print("us = microseconds per time step; int8/f32 = fastrnn int8 time / fastrnn float32 "
          "time; int8/torch8 = against torch's quantize_dynamic (no RNN in torch)")
    print(bench_reduced.format_table(report, errors))
    print(f"charlm (bundled corpus, {trained['steps']} steps), held-out loss per character: "
          f"float32 {trained['float32']:.4f}, int8 {trained['int8']:.4f} "
          f"({trained['relative int8']:+.3%}), bfloat16 {trained['bfloat16']:.4f} "
          f"({trained['relative bfloat16']:+.3%})")
    print(f"wordlm (standard library docstrings, {words['steps']} steps), held-out "
          f"perplexity: float32 {words['float32']:.2f}, int8 {words['int8']:.2f} (loss "
          f"{words['relative int8']:+.3%}), bfloat16 {words['bfloat16']:.2f} "
          f"({words['relative bfloat16']:+.3%})")
    return 0


def cmd_sweep(args):
    from fastrnn.apps import sweep
    show = sys.stderr.isatty() and not args.json
    grid = sweep.QUICK_GRID if args.quick else sweep.FULL_GRID
    if args.reduced and args.dtype != "float32":
        return _bench_error("--reduced runs float32 layers (--dtype float32)")
    report = sweep.run(grid, cells=args.cell, dtype=np.dtype(args.dtype), systems=args.peers,
                       works=("inference", "training") if args.work == "both" else (args.work,),
                       threads=args.threads, repeats=args.repeat, budget=args.budget,
                       progress=_progress_bar if show else None,
                       weights=("int8", "bfloat16") if args.reduced else ())
    if show:
        print(file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        m = report["machine"]
        print(f"fastrnn bench --sweep: {m['dtype']}, {m['threads']} threads for every "
              f"system, median of up to {args.repeat} round-robin rounds")
        _print_limits(m)
        print(sweep.format_table(report))
    if args.plot:
        try:
            paths = sweep.plot(report, args.plot)
        except ImportError:
            return _bench_error("--plot needs matplotlib (pip install matplotlib)")
        print(f"heat maps written: {', '.join(paths)}", file=sys.stderr)
    return 0


def _bench_error(message):
    print(f"python -m fastrnn bench: error: {message}", file=sys.stderr)
    return 2


class _Progress:
    """Training progress on stderr: a bar redrawn in place on a terminal, else a line every
    tenth of the run."""

    def __init__(self, steps, stream=None, unit="chars"):
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.every = max(1, steps // 10)
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, step, steps, loss, chars_per_s):
        text = f"step {step}/{steps}  loss {loss:.3f}  {chars_per_s:,.0f} {self.unit}/s"
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw >= 0.1 or step == steps:
                bar = "#" * (30 * step // steps)
                print(f"\r[{bar:<30}] {text}  ", end="", file=self.stream, flush=True)
                self.last_draw, self.drawn = now, True
        elif step % self.every == 0 or step == steps:
            print(text, file=self.stream, flush=True)

    def clear(self):
        """Erase the bar (before printing something else on the terminal)."""
        if self.tty and self.drawn:
            print("\r" + " " * 100 + "\r", end="", file=self.stream, flush=True)
            self.drawn = False


def _save_model(model, path, error):
    """Save a trained language model to path; the exit code (error's on failure)."""
    try:
        model.save(path)
    except OSError as exc:
        return error(f"cannot write {path}: {exc}")
    print(f"saved {path}")
    return 0


def _load_model(cls, path, app, error):
    """(model, None) read by cls.load from path, or (None, exit code) after error's message."""
    try:
        return cls.load(path), None
    except FileNotFoundError:
        return None, error(f"no model at {path}; train one first with "
                           f"`python -m fastrnn {app} train --out {path}`")
    except (OSError, ValueError) as exc:
        return None, error(str(exc))


def _error(message):
    print(f"python -m fastrnn charlm: error: {message}", file=sys.stderr)
    return 2


def cmd_charlm_train(args):
    import math

    from fastrnn.apps import charlm
    try:
        lines = charlm.load_corpus(args.corpus)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return _error(f"cannot read the corpus: {exc}")
    source = args.corpus or f"bundled {charlm.default_corpus_path().name}"
    chars = sorted(set("".join(lines)))
    model = charlm.CharLM(chars, cell=args.cell, hidden_size=args.hidden,
                          embedding_dim=args.embedding, num_layers=args.layers,
                          dropout=args.dropout, dtype=np.dtype(args.dtype), seed=args.seed)
    V = model.vocab_size
    print(f"corpus: {source}: {len(lines):,} lines, {sum(map(len, lines)):,} characters, "
          f"vocabulary of {V} (with the end of line)")
    print(f"model: {model}")
    print(f"training: {args.steps} steps, batches of {args.batch} lines, Adam lr {args.lr}, "
          f"clip {args.clip}, bptt {args.bptt}, backend {args.backend}")
    progress = _Progress(args.steps)
    sample_every = args.sample_every if args.sample_every is not None else max(1, args.steps // 4)

    def show_samples(step):
        progress.clear()
        names = model.sample(5, temperature=0.8, rng=args.seed + step)
        print(f"step {step}: {', '.join(names)}", flush=True)

    result = charlm.train(model, lines, steps=args.steps, batch_size=args.batch, lr=args.lr,
                          clip=args.clip, bptt=args.bptt, backend=args.backend, seed=args.seed,
                          progress=progress, sample_every=sample_every, on_sample=show_samples)
    progress.clear()
    corpus_loss = model.evaluate(lines)
    kernels = "fastrnn.reference (NumPy)" if args.backend == "reference" else "compiled fastrnn"
    print(f"trained {result['steps']} steps in {result['seconds']:.1f} s: "
          f"{result['chars']:,} characters, {result['chars_per_s']:,.0f} chars/s "
          f"({kernels} kernels)")
    print(f"final loss: {result['running_loss']:.3f} nats/char (mean of the last 100 steps), "
          f"{corpus_loss:.3f} over the whole corpus; uniform log(V) = log({V}) = "
          f"{math.log(V):.3f}")
    return _save_model(model, args.out, _error)


def cmd_charlm_sample(args):
    from fastrnn.apps import charlm
    model, code = _load_model(charlm.CharLM, args.model, "charlm", _error)
    if model is None:
        return code
    try:
        if args.beam:
            for line, score in model.beam(args.beam, prefix=args.prefix, max_len=args.max_len):
                print(f"{line}\t{score:.3f}")
            return 0
        gen = np.random.default_rng(args.seed)
        out = []
        for _ in range(50):          # draw until n lines are novel (or give up)
            for line in model.sample(args.n, temperature=args.temperature, top_k=args.top_k,
                                     top_p=args.top_p, prefix=args.prefix,
                                     max_len=args.max_len, rng=gen):
                if line and (args.allow_copies or model.is_novel(line)) and len(out) < args.n:
                    out.append(line)
            if len(out) >= args.n:
                break
    except (TypeError, ValueError) as exc:
        return _error(str(exc))
    for line in out:
        print(line)
    return 0


def _add_charlm_parser(sub):
    c = sub.add_parser("charlm", help="character-level language model: train, sample",
                       description="Character-level language model (Embedding -> RNN/LSTM/GRU "
                                   "-> Linear) trained on one example per line.")
    csub = c.add_subparsers(dest="charlm_command", required=True)
    t = csub.add_parser("train", help="train on a text file, one example per line")
    t.add_argument("--corpus", metavar="FILE",
                   help="UTF-8 text, one example per line (default: the bundled dinosaur names)")
    t.add_argument("--cell", choices=KEYS, default="lstm")
    t.add_argument("--hidden", type=int, default=128, metavar="N", help="hidden size (128)")
    t.add_argument("--embedding", type=int, default=32, metavar="N",
                   help="embedding size (32)")
    t.add_argument("--layers", type=int, default=1, metavar="N", help="recurrent layers (1)")
    t.add_argument("--dropout", type=float, default=0.0, metavar="P",
                   help="dropout between recurrent layers (0)")
    t.add_argument("--steps", type=int, default=2000, metavar="N", help="training steps (2000)")
    t.add_argument("--batch", type=int, default=32, metavar="N", help="lines per batch (32)")
    t.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate (0.005)")
    t.add_argument("--clip", type=float, default=5.0,
                   help="largest total gradient norm (5)")
    t.add_argument("--bptt", type=int, default=64, metavar="N",
                   help="truncated BPTT window in characters (64)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--backend", choices=("fastrnn", "reference"), default="fastrnn",
                   help="recurrent kernels: compiled fastrnn, or fastrnn.reference (NumPy) to "
                        "compare training speed")
    t.add_argument("--sample-every", type=int, metavar="N",
                   help="print samples every N steps (default: a quarter of the run; 0: never)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--out", default="charlm.npz", metavar="MODEL",
                   help="where to save the model (charlm.npz)")
    s = csub.add_parser("sample", help="print novel lines from a trained model")
    s.add_argument("model", nargs="?", default="charlm.npz", metavar="MODEL",
                   help="a model saved by train (charlm.npz)")
    s.add_argument("--n", type=int, default=10, help="lines to print (10)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, metavar="K")
    s.add_argument("--top-p", type=float, metavar="P")
    s.add_argument("--prefix", default="", metavar="TEXT", help="start every line with TEXT")
    s.add_argument("--max-len", type=int, default=40, metavar="N",
                   help="most characters drawn per line (40)")
    s.add_argument("--seed", type=int, help="seed for reproducible lines")
    s.add_argument("--beam", type=int, metavar="K",
                   help="print the K most probable lines (beam search) instead of sampling")
    s.add_argument("--allow-copies", action="store_true",
                   help="also print lines that are in the training corpus")
    return c


def _check_charlm_args(parser, args):
    positive = {"hidden": "--hidden", "embedding": "--embedding", "layers": "--layers",
                "steps": "--steps", "batch": "--batch", "bptt": "--bptt", "n": "--n",
                "max_len": "--max-len", "beam": "--beam", "top_k": "--top-k"}
    for attr, flag in positive.items():
        value = getattr(args, attr, None)
        if value is not None and value < 1:
            parser.error(f"{flag}: expected a positive integer, got {value}")
    if getattr(args, "sample_every", None) is not None and args.sample_every < 0:
        parser.error(f"--sample-every: expected an integer >= 0, got {args.sample_every}")
    for attr, flag in (("lr", "--lr"), ("clip", "--clip"), ("temperature", "--temperature")):
        value = getattr(args, attr, None)
        if value is not None and not value >= 0:
            parser.error(f"{flag}: expected a number >= 0, got {value}")
    if getattr(args, "dropout", None) is not None and not 0 <= args.dropout < 1:
        parser.error(f"--dropout: expected a number in [0, 1), got {args.dropout}")
    if getattr(args, "top_p", None) is not None and not 0 < args.top_p <= 1:
        parser.error(f"--top-p: expected a number in (0, 1], got {args.top_p}")


def _wordlm_error(message):
    print(f"python -m fastrnn wordlm: error: {message}", file=sys.stderr)
    return 2


def cmd_wordlm_train(args):
    from fastrnn.apps import wordlm
    try:
        if args.corpus:
            docs, source = wordlm.read_corpus(args.corpus), args.corpus
        else:
            docs = wordlm.stdlib_corpus(args.max_words)
            source = "docstrings of this Python's standard library"
    except (OSError, ValueError) as exc:
        return _wordlm_error(f"cannot read the corpus: {exc}")
    train_words, held_words = wordlm.split_corpus(docs)
    vocab = wordlm.Vocabulary.build(train_words, args.vocab)
    train_ids, held_ids = vocab.encode(train_words), vocab.encode(held_words)
    model = wordlm.WordLM(vocab, embedding_dim=args.embedding, hidden1=args.hidden1,
                          hidden2=args.hidden2, dtype=np.dtype(args.dtype), seed=args.seed)
    unk = float(np.mean(train_ids == 0))
    print(f"corpus: {source}: {len(train_words):,} training words, {len(held_words):,} "
          f"held out; vocabulary {len(vocab):,} (with <unk>, {unk:.1%} of the training "
          f"words, and <eos>)")
    print(f"model: {model}")
    print(f"training: {args.steps} steps of {args.bptt} words x {args.batch} streams, "
          f"Adam lr {args.lr}, clip {args.clip}")
    unigram = wordlm.unigram_perplexity(train_ids, held_ids, len(vocab))
    progress = _Progress(args.steps, unit="words")
    every = args.eval_every if args.eval_every is not None else max(1, args.steps // 4)
    try:
        start = wordlm.perplexity(model, held_ids, bptt=args.bptt, batch_size=args.batch)
    except ValueError as exc:
        return _wordlm_error(str(exc))
    print(f"held-out perplexity: {start:,.1f} untrained, {unigram:,.1f} for word "
          f"frequencies alone (unigram)")

    def show(step, ppl):
        progress.clear()
        words = model.sample(20, temperature=0.8, rng=args.seed + step)
        print(f"step {step}: held-out perplexity {ppl:,.1f}; sample: {' '.join(words)}",
              flush=True)

    try:
        result = wordlm.train(model, train_ids, held_ids, steps=args.steps, bptt=args.bptt,
                              batch_size=args.batch, lr=args.lr, clip=args.clip,
                              seed=args.seed, progress=progress, eval_every=every,
                              on_eval=show)
    except ValueError as exc:
        return _wordlm_error(str(exc))
    progress.clear()
    print(f"trained {result['steps']} steps in {result['seconds']:.1f} s: "
          f"{result['tokens']:,} words, {result['tokens_per_s']:,.0f} words/s")
    print(f"held-out perplexity: {result['held_out_perplexity']:,.1f} (unigram "
          f"{unigram:,.1f}); training loss {result['running_loss']:.3f} (mean of the last "
          f"50 steps)")
    return _save_model(model, args.out, _wordlm_error)


def cmd_wordlm_sample(args):
    from fastrnn.apps import wordlm
    model, code = _load_model(wordlm.WordLM, args.model, "wordlm", _wordlm_error)
    if model is None:
        return code
    gen = np.random.default_rng(args.seed)
    prefix = wordlm.tokenize(args.prefix)[:-1] if args.prefix else []
    try:
        for _ in range(args.n):
            words = model.sample(args.words, prefix=prefix, temperature=args.temperature,
                                 top_k=args.top_k, top_p=args.top_p, rng=gen)
            print(" ".join(prefix + words))
    except (TypeError, ValueError) as exc:
        return _wordlm_error(str(exc))
    return 0


def _add_wordlm_parser(sub):
    w = sub.add_parser("wordlm", help="word-level language model: train, sample",
                       description="Word-level language model (Embedding 200 -> LSTM 256 -> "
                                   "LSTM 128 -> softmax over at most 10,000 words), truncated "
                                   "BPTT over streams of words.")
    wsub = w.add_subparsers(dest="wordlm_command", required=True)
    t = wsub.add_parser("train", help="train on a text file, or on the standard library's "
                                      "docstrings")
    t.add_argument("--corpus", metavar="FILE",
                   help="UTF-8 text, paragraphs separated by blank lines (default: the "
                        "docstrings of this Python's standard library)")
    t.add_argument("--max-words", type=int, default=400_000, metavar="N",
                   help="words gathered from the standard library without --corpus (400000)")
    t.add_argument("--vocab", type=int, default=10_000, metavar="N",
                   help="vocabulary size with <unk> and <eos> (10000)")
    t.add_argument("--embedding", type=int, default=200, metavar="N")
    t.add_argument("--hidden1", type=int, default=256, metavar="N")
    t.add_argument("--hidden2", type=int, default=128, metavar="N")
    t.add_argument("--steps", type=int, default=1000, metavar="N", help="training steps (1000)")
    t.add_argument("--batch", type=int, default=60, metavar="N", help="parallel streams (60)")
    t.add_argument("--bptt", type=int, default=20, metavar="N", help="words per window (20)")
    t.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (0.002)")
    t.add_argument("--clip", type=float, default=5.0, help="largest total gradient norm (5)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-every", type=int, metavar="N",
                   help="held-out perplexity and a sample every N steps (default: a quarter "
                        "of the run; 0: only at the end)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--out", default="wordlm.npz", metavar="MODEL",
                   help="where to save the model (wordlm.npz)")
    s = wsub.add_parser("sample", help="print text drawn from a trained model")
    s.add_argument("model", nargs="?", default="wordlm.npz", metavar="MODEL")
    s.add_argument("--n", type=int, default=5, help="lines to print (5)")
    s.add_argument("--words", type=int, default=30, metavar="N", help="words per line (30)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, metavar="K")
    s.add_argument("--top-p", type=float, metavar="P")
    s.add_argument("--prefix", default="", metavar="TEXT", help="start every line with TEXT")
    s.add_argument("--seed", type=int, help="seed for reproducible text")
    return w


def _check_wordlm_args(parser, args):
    positive = {"max_words": "--max-words", "embedding": "--embedding",
                "hidden1": "--hidden1", "hidden2": "--hidden2", "steps": "--steps",
                "batch": "--batch", "bptt": "--bptt", "n": "--n", "words": "--words",
                "top_k": "--top-k"}
    for attr, flag in positive.items():
        value = getattr(args, attr, None)
        if value is not None and value < 1:
            parser.error(f"{flag}: expected a positive integer, got {value}")
    if getattr(args, "vocab", None) is not None and args.vocab < 3:
        parser.error(f"--vocab: expected an integer >= 3, got {args.vocab}")
    if getattr(args, "eval_every", None) is not None and args.eval_every < 0:
        parser.error(f"--eval-every: expected an integer >= 0, got {args.eval_every}")
    for attr, flag in (("lr", "--lr"), ("clip", "--clip"), ("temperature", "--temperature")):
        value = getattr(args, attr, None)
        if value is not None and not value >= 0:
            parser.error(f"{flag}: expected a number >= 0, got {value}")
    if getattr(args, "top_p", None) is not None and not 0 < args.top_p <= 1:
        parser.error(f"--top-p: expected a number in (0, 1], got {args.top_p}")


# ------------------------------------------------ sequence-to-sequence examples
# dates (attention), digits (many-to-one) and ctcdigits (CTC): each app module holds its
# DEFAULTS and QUICK settings; an option left unset takes QUICK's value with --quick.


def _app_error(app):
    def error(message):
        print(f"python -m fastrnn {app}: error: {message}", file=sys.stderr)
        return 2
    return error


def _settings(args, defaults, quick):
    """Every training setting: the option's value if given, else QUICK's with --quick, else
    the default."""
    out = {}
    for name, value in defaults.items():
        given = getattr(args, name)
        out[name] = given if given is not None else (quick.get(name, value) if args.quick
                                                     else value)
    return out


def _check_settings(parser, settings, positive, fractions=()):
    for name in positive:
        if settings[name] < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got "
                         f"{settings[name]}")
    for name in fractions:
        if not settings[name] > 0:
            parser.error(f"--{name}: expected a number > 0, got {settings[name]}")


def _add_training_options(t, defaults, extra_help=""):
    t.add_argument("--steps", type=int, metavar="N", help=f"training steps ({defaults['steps']})")
    t.add_argument("--batch", type=int, metavar="N", help=f"examples per step "
                                                           f"({defaults['batch']})")
    t.add_argument("--lr", type=float, help=f"Adam learning rate, decayed linearly to a tenth "
                                            f"({defaults['lr']})")
    t.add_argument("--clip", type=float, help=f"largest total gradient norm ({defaults['clip']})")
    t.add_argument("--seed", type=int, help="seeds the model, the split and the batches (0)")
    t.add_argument("--threads", type=int, metavar="N",
                   help="fastrnn's threads (default: the CPUs available)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--quick", action="store_true",
                   help="a short run (seconds) for a first look and the tests" + extra_help)


def _train_report(result, unit="examples"):
    print(f"trained {result['steps']} steps in {result['seconds']:.1f} s "
          f"({result['examples_per_s']:,.0f} {unit}/s); loss {result['first_loss']:.3f} at the "
          f"first step, {result['running_loss']:.4f} over the last 50")


def _set_threads(parser, threads):
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads: expected a positive integer, got {threads}")
        from fastrnn.kernels.threads import set_num_threads
        set_num_threads(threads)


def cmd_dates_train(parser, args):
    from fastrnn.apps import dates
    error = _app_error("dates")
    st = _settings(args, dates.DEFAULTS, dates.QUICK)
    _check_settings(parser, st, ("steps", "batch", "held_out", "hidden"), ("lr", "clip"))
    _set_threads(parser, args.threads)
    model = dates.DateTranslator(decoder_size=st["hidden"], encoder_size=max(1, st["hidden"] // 2),
                                 dtype=np.dtype(args.dtype), seed=st["seed"])
    texts, iso = dates.held_out_dates(st["held_out"], st["seed"])
    print(f"data: dates {dates.FIRST} to {dates.LAST} in {dates.NUM_FORMATS} formats (and "
          f"three cases); {st['held_out']:,} dates held out, never trained on")
    print(f"model: {model}")
    print(f"training: {st['steps']} steps of {st['batch']} fresh dates, Adam lr {st['lr']}, "
          f"clip {st['clip']}")
    progress = _Progress(st["steps"], unit="dates")
    result = dates.train(model, steps=st["steps"], batch_size=st["batch"], lr=st["lr"],
                         clip=st["clip"], held_out=st["held_out"], seed=st["seed"],
                         progress=progress)
    progress.clear()
    _train_report(result, "dates")
    exact, chars = dates.accuracy(model, texts, iso)
    print(f"held-out exact match (greedy): {exact:.2%} of {len(texts):,} dates; "
          f"{chars:.2%} of the characters")
    for text in texts[:3]:
        print(f"  {text!r} -> {model.translate([text])[0]}")
    return _save_model(model, args.out, error)


def cmd_dates_translate(parser, args):
    from fastrnn.apps import dates
    error = _app_error("dates")
    if args.beam is not None and args.beam < 1:
        parser.error(f"--beam: expected a positive integer, got {args.beam}")
    model, code = _load_model(dates.DateTranslator, args.model, "dates", error)
    if model is None:
        return code
    try:
        if args.beam:
            for text in args.text:
                for out, score in model.beam(text, args.beam):
                    print(f"{text}\t{out}\t{score:.3f}")
        else:
            for text, out in zip(args.text, model.translate(args.text)):
                print(f"{text}\t{out}")
        if args.plot:
            dates.plot_attention(model, args.text[0], args.plot)
            print(f"attention map of {args.text[0]!r} written to {args.plot}", file=sys.stderr)
    except (TypeError, ValueError) as exc:
        return error(str(exc))
    except ImportError as exc:
        return error(str(exc))
    except OSError as exc:
        return error(f"cannot write {args.plot}: {exc}")
    return 0


def _add_dates_parser(sub):
    from fastrnn.apps.dates import DEFAULTS
    d = sub.add_parser("dates", help="date translation with attention: train, translate",
                       description="Translate human-readable dates (\"3rd of May 1979\") to "
                                   "YYYY-MM-DD: bidirectional LSTM encoder, additive "
                                   "attention, LSTMCell decoder.")
    dsub = d.add_subparsers(dest="dates_command", required=True)
    t = dsub.add_parser("train", help="train on generated dates, report held-out accuracy")
    t.add_argument("--hidden", type=int, metavar="N",
                   help=f"decoder size; the encoder has N/2 per direction ({DEFAULTS['hidden']})")
    t.add_argument("--held-out", type=int, metavar="N",
                   help=f"dates held out for the accuracy ({DEFAULTS['held_out']})")
    _add_training_options(t, DEFAULTS)
    t.add_argument("--out", default="dates.npz", metavar="MODEL", help="(dates.npz)")
    r = dsub.add_parser("translate", help="translate dates with a trained model")
    r.add_argument("text", nargs="+", help="dates to translate, e.g. \"3rd of May 1979\"")
    r.add_argument("--model", default="dates.npz", help="a model saved by train (dates.npz)")
    r.add_argument("--beam", type=int, metavar="K",
                   help="print the K best translations by beam search with their log p")
    r.add_argument("--plot", metavar="FILE",
                   help="draw the attention map of the first text as a PNG (needs matplotlib)")
    return d


def cmd_digits_train(parser, args):
    from fastrnn.apps import digits
    error = _app_error("digits")
    st = _settings(args, digits.DEFAULTS, digits.QUICK)
    _check_settings(parser, st, ("steps", "batch", "held_out", "hidden"), ("lr", "clip"))
    _set_threads(parser, args.threads)
    try:
        xtr, ytr, xho, yho = digits.split(st["held_out"], st["seed"])
    except (ImportError, ValueError) as exc:
        return error(str(exc))
    model = digits.DigitClassifier(hidden_size=st["hidden"], pool=args.pool,
                                   dtype=np.dtype(args.dtype), seed=st["seed"])
    print(f"data: scikit-learn's 8x8 digits read row by row (8 steps of 8 pixels): "
          f"{len(ytr):,} for training, {len(yho):,} held out")
    print(f"model: {model}")
    print(f"training: {st['steps']} steps of {st['batch']} images, Adam lr {st['lr']}, "
          f"clip {st['clip']}")
    progress = _Progress(st["steps"], unit="images")
    result = digits.train(model, xtr, ytr, steps=st["steps"], batch_size=st["batch"],
                          lr=st["lr"], clip=st["clip"], seed=st["seed"], progress=progress)
    progress.clear()
    _train_report(result, "images")
    print(f"accuracy: {model.accuracy(xho, yho):.2%} held out ({len(yho):,} images), "
          f"{model.accuracy(xtr, ytr):.2%} on the training images; chance 10%")
    return _save_model(model, args.out, error)


def cmd_digits_evaluate(parser, args):
    from fastrnn.apps import digits
    error = _app_error("digits")
    if args.held_out < 1:
        parser.error(f"--held-out: expected a positive integer, got {args.held_out}")
    model, code = _load_model(digits.DigitClassifier, args.model, "digits", error)
    if model is None:
        return code
    try:
        _, _, xho, yho = digits.split(args.held_out, args.seed)
    except (ImportError, ValueError) as exc:
        return error(str(exc))
    pred = model.predict(xho)
    print(f"held-out accuracy: {np.mean(pred == yho):.2%} of {len(yho):,} images")
    print("first predictions: " + " ".join(str(p) for p in pred[:20]))
    print("true labels:       " + " ".join(str(y) for y in yho[:20]))
    return 0


def _add_digits_parser(sub):
    from fastrnn.apps.digits import DEFAULTS, POOLS
    d = sub.add_parser("digits", help="many-to-one classifier of 8x8 digits: train, evaluate",
                       description="An LSTM reads scikit-learn's 8x8 digit images row by row; "
                                   "a linear layer classifies its final (or mean) state.")
    dsub = d.add_subparsers(dest="digits_command", required=True)
    t = dsub.add_parser("train", help="train, report held-out accuracy")
    t.add_argument("--hidden", type=int, metavar="N", help=f"LSTM size ({DEFAULTS['hidden']})")
    t.add_argument("--pool", choices=POOLS, default="last",
                   help="classify the last state or the mean of the states (last)")
    t.add_argument("--held-out", type=int, metavar="N",
                   help=f"images held out ({DEFAULTS['held_out']})")
    _add_training_options(t, DEFAULTS)
    t.add_argument("--out", default="digits.npz", metavar="MODEL", help="(digits.npz)")
    e = dsub.add_parser("evaluate", help="a saved model's accuracy on the held-out images")
    e.add_argument("model", nargs="?", default="digits.npz", metavar="MODEL")
    e.add_argument("--held-out", type=int, default=DEFAULTS["held_out"], metavar="N",
                   help="the split used in training")
    e.add_argument("--seed", type=int, default=0, help="the seed used in training (0)")
    return d


def cmd_ctcdigits_train(parser, args):
    from fastrnn.apps import ctcdigits
    error = _app_error("ctcdigits")
    st = _settings(args, ctcdigits.DEFAULTS, ctcdigits.QUICK)
    _check_settings(parser, st, ("steps", "batch", "hidden", "layers", "max_digits",
                                 "strings", "beam"), ("lr", "clip"))
    _set_threads(parser, args.threads)
    try:
        sequences, targets = ctcdigits.held_out_strings(st["strings"], seed=st["seed"],
                                                        max_digits=st["max_digits"])
    except (ImportError, ValueError) as exc:
        return error(str(exc))
    model = ctcdigits.DigitReader(hidden_size=st["hidden"], num_layers=st["layers"],
                                  dtype=np.dtype(args.dtype), seed=st["seed"])
    print(f"data: strings of 1 to {st['max_digits']} of scikit-learn's 8x8 digits side by "
          f"side, read column by column; {len(targets):,} held-out strings "
          f"({sum(map(len, targets)):,} digits) of held-out images only")
    print(f"model: {model}")
    print(f"training: CTC, {st['steps']} steps of {st['batch']} fresh strings, Adam lr "
          f"{st['lr']}, clip {st['clip']}")
    progress = _Progress(st["steps"], unit="strings")
    result = ctcdigits.train(model, steps=st["steps"], batch_size=st["batch"], lr=st["lr"],
                             clip=st["clip"], seed=st["seed"], max_digits=st["max_digits"],
                             progress=progress)
    progress.clear()
    _train_report(result, "strings")
    greedy = ctcdigits.label_error_rate(model, sequences, targets)
    beam = ctcdigits.label_error_rate(model, sequences, targets, beam_width=st["beam"])
    print(f"held-out label error rate: {greedy:.2%} greedy, {beam:.2%} beam search "
          f"(width {st['beam']})")
    return _save_model(model, args.out, error)


def cmd_ctcdigits_read(parser, args):
    from fastrnn.apps import ctcdigits
    error = _app_error("ctcdigits")
    for name in ("count", "beam"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name}: expected a positive integer, got {value}")
    model, code = _load_model(ctcdigits.DigitReader, args.model, "ctcdigits", error)
    if model is None:
        return code
    try:
        sequences, targets = ctcdigits.held_out_strings(args.count, seed=args.seed)
    except (ImportError, ValueError) as exc:
        return error(str(exc))
    for seq, true, got in zip(sequences, targets, model.read(sequences, args.beam)):
        mark = "" if got == true else "   <- wrong"
        print(f"{len(seq):3d} columns  true {''.join(map(str, true)):<8}  read "
              f"{''.join(map(str, got)):<8}{mark}")
    return 0


def _add_ctcdigits_parser(sub):
    from fastrnn.apps.ctcdigits import DEFAULTS
    c = sub.add_parser("ctcdigits", help="CTC transcription of digit strings: train, read",
                       description="A bidirectional LSTM trained with CTC reads strings of 8x8 "
                                   "digit images laid side by side, column by column, "
                                   "without alignment.")
    csub = c.add_subparsers(dest="ctcdigits_command", required=True)
    t = csub.add_parser("train", help="train, report the held-out label error rate")
    t.add_argument("--hidden", type=int, metavar="N",
                   help=f"LSTM size per direction ({DEFAULTS['hidden']})")
    t.add_argument("--layers", type=int, metavar="N", help=f"({DEFAULTS['layers']})")
    t.add_argument("--max-digits", type=int, metavar="N",
                   help=f"longest string ({DEFAULTS['max_digits']})")
    t.add_argument("--strings", type=int, metavar="N",
                   help=f"held-out strings for the error rate ({DEFAULTS['strings']})")
    t.add_argument("--beam", type=int, metavar="K",
                   help=f"beam width of the beam-search error rate ({DEFAULTS['beam']})")
    _add_training_options(t, DEFAULTS)
    t.add_argument("--out", default="ctcdigits.npz", metavar="MODEL", help="(ctcdigits.npz)")
    r = csub.add_parser("read", help="read held-out strings with a trained model")
    r.add_argument("model", nargs="?", default="ctcdigits.npz", metavar="MODEL")
    r.add_argument("--count", type=int, default=10, metavar="N", help="strings to read (10)")
    r.add_argument("--beam", type=int, metavar="K", help="beam search of width K (greedy)")
    r.add_argument("--seed", type=int, default=0, help="the seed used in training (0)")
    return c


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastrnn",
                                     description="fastrnn: fast CPU recurrent-network kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, compiled modules, SIMD target and threads")
    b = sub.add_parser("bench", help="time fastrnn against NumPy, PyTorch and ONNX Runtime")
    b.add_argument("--cell", nargs="+", choices=KEYS, default=list(KEYS))
    b.add_argument("--shape", action="append", type=_parse_shape, metavar="T,B,D,H",
                   help="a shape to time (repeatable); default: six shapes from batch 1 "
                        "to GEMM-bound")
    b.add_argument("--quick", action="store_true",
                   help="two shapes (with --sweep: a 2 x 2 grid of one cell), for tests")
    b.add_argument("--full", action="store_true",
                   help="six shapes, from batch 1 to GEMM-bound, instead of the first look's "
                        "three")
    b.add_argument("--sweep", action="store_true",
                   help="every batch 1-128 and hidden size 32-2048, D = H and D << H, against "
                        "PyTorch and ONNX Runtime; --plot DIR writes a heat map per cell and "
                        "work")
    b.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    b.add_argument("--work", choices=("inference", "training", "both"), default="both")
    b.add_argument("--peers", nargs="+", choices=("numpy", "torch", "onnxruntime"),
                   help="systems to compare with (default: every one importable here)")
    b.add_argument("--threads", type=int, default=None,
                   help="threads for every system (default: the CPUs available)")
    b.add_argument("--repeat", type=int, default=7, help="maximum round-robin rounds")
    b.add_argument("--budget", type=float, default=2.0,
                   help="seconds per workload after which rounds stop (at least 3 are made)")
    b.add_argument("--json", action="store_true", help="print results as JSON")
    b.add_argument("--models", action="store_true",
                   help="time whole models instead: charlm and wordlm training steps and "
                        "inference, fastrnn against PyTorch")
    b.add_argument("--reduced", action="store_true",
                   help="reduced precision instead: float32, int8 and bfloat16 FrozenLayers "
                        "against PyTorch's dynamic int8 LSTM and GRU, speed and error (with "
                        "--sweep: int8 and bfloat16 columns at every inference point)")
    b.add_argument("--plot", metavar="PATH",
                   help="write a PNG of the speed-ups to this file (with --sweep: heat maps "
                        "into this folder); needs matplotlib")
    charlm_parser = _add_charlm_parser(sub)
    wordlm_parser = _add_wordlm_parser(sub)
    examples = {"dates": (_add_dates_parser(sub), {"train": cmd_dates_train,
                                                    "translate": cmd_dates_translate}),
                "digits": (_add_digits_parser(sub), {"train": cmd_digits_train,
                                                      "evaluate": cmd_digits_evaluate}),
                "ctcdigits": (_add_ctcdigits_parser(sub), {"train": cmd_ctcdigits_train,
                                                            "read": cmd_ctcdigits_read})}
    args = parser.parse_args(argv)
    if args.command in examples:
        app_parser, commands = examples[args.command]
        return commands[getattr(args, f"{args.command}_command")](app_parser, args)
    if args.command == "wordlm":
        _check_wordlm_args(wordlm_parser, args)
        if args.wordlm_command == "train":
            return cmd_wordlm_train(args)
        return cmd_wordlm_sample(args)
    if args.command == "info":
        return cmd_info(args)
    if args.command == "charlm":
        _check_charlm_args(charlm_parser, args)
        if args.charlm_command == "train":
            return cmd_charlm_train(args)
        return cmd_charlm_sample(args)
    return cmd_bench(args)
