"""Throughput of 2 Python threads against 1 on one layer, BLAS limited to one thread.

The kernels release the GIL for all their compute and allocate their scratch per
call, so threads sharing one layer run its inference on separate cores.  This
script measures what that buys: every thread calls the same layer in a loop,
and the throughput (calls per second, all threads together) of 2 threads is
compared with 1.  BLAS (the OpenBLAS of NumPy and of SciPy) is limited to one
thread with threadpoolctl while it runs, and so are fastrnn's own kernel threads
where the version has them, so that the calling threads are the only
parallelism.  Training (forward + backward) is timed on one layer per thread,
since backward adds into the layer's shared grads.

    python bench/threads.py
    python bench/threads.py --shapes 100,1,256,256 --threads 1 2 4 --rounds 9

Shapes are T,B,D,H.  A measurement, not a test: it never fails on a time.
"""

import argparse
import os
import statistics
import threading
import time

import numpy as np

import fastrnn

CELLS = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}


def throughput(work, n_threads, calls):
    """(calls per second, CPU seconds per wall second) of n_threads threads, each making
    `calls` calls of work(i).  The second is near n_threads when the threads really ran at
    once (GIL released and free cores), near 1 when they took turns."""
    barrier = threading.Barrier(n_threads + 1)
    errors = []

    def loop(i):
        try:
            barrier.wait()
            for _ in range(calls):
                work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    start, cpu_start = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if errors:
        raise errors[0]
    return n_threads * calls / elapsed, cpu / elapsed


def measure(cell, shape, mode, thread_counts, rounds, seconds):
    """{n_threads: (median calls per second, median CPU per wall second)}, thread counts
    timed in turns each round."""
    T, B, D, H = shape
    n_layers = max(thread_counts) if mode == "training" else 1
    layers = [CELLS[cell](D, H, seed=0) for _ in range(n_layers)]
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((T, B, H)).astype(np.float32)

    if mode == "inference":
        def work(i):
            layers[0](x)
    else:
        def work(i):
            layer = layers[i]
            _, _, cache = layer.forward(x)
            layer.backward(dy, cache)

    start = time.perf_counter()       # calibrate: calls per thread for about `seconds`
    work(0)
    work(0)
    per_call = (time.perf_counter() - start) / 2
    calls = max(3, int(seconds / per_call))
    samples = {n: [] for n in thread_counts}
    for _ in range(rounds):
        for n in thread_counts:
            samples[n].append(throughput(work, n, calls))
    return {n: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
            for n, v in samples.items()}


def parse_shape(text):
    try:
        T, B, D, H = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected T,B,D,H (four integers), got {text!r}")
    return T, B, D, H


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", choices=sorted(CELLS), default=["lstm"])
    parser.add_argument("--shapes", nargs="+", type=parse_shape,
                        default=[(100, 1, 256, 256), (100, 16, 256, 256)], help="T,B,D,H")
    parser.add_argument("--modes", nargs="+", choices=["inference", "training"],
                        default=["inference", "training"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="about this long per thread per timing")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_info, threadpool_limits

    base = args.threads[0]
    print(f"fastrnn {fastrnn.__version__}, {os.cpu_count()} CPUs (load average "
          f"{os.getloadavg()[0]:.2f}), float32, BLAS limited to 1 thread; median of "
          f"{args.rounds} rounds; throughput in calls/s (all threads)")
    cols = "  ".join(f"{f'{n} thr':>9}" for n in args.threads)
    ratios = "  ".join(f"{f'{n}/{base}':>5}" for n in args.threads[1:])
    cpus = "  ".join(f"{f'cpu {n}':>5}" for n in args.threads)
    header = f"{'cell':<5} {'mode':<9} {'T,B,D,H':<14}  {cols}  {ratios}  {cpus}  load"
    print(header)
    print("-" * len(header))
    previous = fastrnn.set_num_threads(1)     # threads of the caller are the only parallelism
    with threadpool_limits(1):
        blas = sorted({(i['internal_api'], i['num_threads']) for i in threadpool_info()
                       if i['user_api'] == 'blas'})
        for cell in args.cells:
            for shape in args.shapes:
                for mode in args.modes:
                    got = measure(cell, shape, mode, args.threads, args.rounds, args.seconds)
                    cols = "  ".join(f"{got[n][0]:>9.1f}" for n in args.threads)
                    ratios = "  ".join(f"{got[n][0] / got[base][0]:>5.2f}"
                                       for n in args.threads[1:])
                    cpus = "  ".join(f"{got[n][1]:>5.2f}" for n in args.threads)
                    print(f"{cell:<5} {mode:<9} {','.join(map(str, shape)):<14}  {cols}  "
                          f"{ratios}  {cpus}  {os.getloadavg()[0]:4.2f}")
    if previous is not None:
        fastrnn.set_num_threads(previous)
    own = "fastrnn's kernel threads set to 1" if previous is not None else \
        "no kernel threads of fastrnn's own in this version"
    print(f"\nBLAS libraries while timing (api, threads): {blas}; {own}.  Inference: all "
          f"threads share one layer.  Training: forward + backward, one layer per thread.  "
          f"'cpu N': CPU seconds per wall second with N threads (N when they ran at once; "
          f"less when the GIL or other processes on the machine made them take turns).  "
          f"'load': the machine's 1-minute load average after the row (the benchmark's own "
          f"threads count); well above the thread count, other processes took cores too.")


if __name__ == "__main__":
    main()
