"""Limiting NumPy's and SciPy's BLAS threads for a while (fastrnn threads its kernels itself).

NumPy and SciPy each carry an OpenBLAS.  Its worker threads busy-wait for a
while after every threaded call, so on a machine with few cores the many
small products of a training loop (a Linear layer, the loss) can become
several times slower, and fastrnn's own kernel threads with them.  While
``single_threaded_blas()`` is active every BLAS runs on the calling thread.

threadpoolctl is used when installed.  Without it, the OpenBLAS libraries
already loaded in the process (found in /proc/self/maps, Linux only) are set
to one thread through their ``openblas_set_num_threads`` entry point (as
named in NumPy's and SciPy's wheels or in a system OpenBLAS) and restored on
exit; elsewhere nothing is changed.
"""

import contextlib
import ctypes
import os

# (prefix, suffix) of the exported names: wheels of NumPy (64-bit ints), of SciPy, system builds
_NAMINGS = (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", ""))


def _loaded_openblas_paths():
    paths = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6:
                    path = fields[5].strip()
                    name = os.path.basename(path).lower()
                    if "openblas" in name and ".so" in name:
                        paths.add(path)
    except OSError:
        pass
    return sorted(paths)


def _openblas_controls():
    """(set_num_threads, get_num_threads) of every OpenBLAS loaded in this process."""
    controls = []
    mode = getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL
    for path in _loaded_openblas_paths():
        try:
            lib = ctypes.CDLL(path, mode=mode)        # already loaded: just a handle
        except OSError:
            continue
        for prefix, suffix in _NAMINGS:
            try:
                setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
                getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
            except AttributeError:
                continue
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            controls.append((setter, getter))
            break
    return controls


@contextlib.contextmanager
def single_threaded_blas():
    """Run the body with every BLAS of the process limited to one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(1, user_api="blas"):
            yield
        return
    controls = _openblas_controls()
    saved = [get() for _, get in controls]
    for set_threads, _ in controls:
        set_threads(1)
    try:
        yield
    finally:
        for (set_threads, _), n in zip(controls, saved):
            set_threads(n)
