"""Build fastrnn's compiled kernels.

The compiled wing is the package fastrnn/kernels/ (ARCHITECTURE.md):
recurrent.pyx holds every cell's time loops (one extension, so the
packed-weight GEMM and the fused element-wise passes of csrc/, header-only,
are compiled once); threads.pyx the worker pool (pthreads; no OpenMP, no
BLAS); plan.pyx the one-step plans of fastrnn.Stepper; elementwise.pyx the
activations exposed for tests; probe.pyx the probes of the machine's limits;
ctc.pyx the CTC loss's forward-backward recursion (with csrc/fastrnn_ctc.h).

Environment:
  FASTRNN_DEBUG=1   turn Cython's bounds, wraparound and initialisation checks
                    back on and build with -O1 -g (for tests under a debugger).
"""

import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTRNN_DEBUG", "") not in ("", "0")

# Checks are off in release builds: the Python layer validates every input
# before a kernel runs, and the kernels index with trusted sizes.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

if sys.platform == "win32":
    COMPILE_ARGS = ["/O2"]
else:
    # Never -ffast-math: linked into a shared object it sets flush-to-zero for
    # the whole Python process.  These two flags only let the compiler
    # vectorise libm-free loops and drop errno bookkeeping.
    COMPILE_ARGS = ["-O1", "-g"] if DEBUG else ["-O3"]
    COMPILE_ARGS += ["-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function",
                     "-Wno-psabi"]   # 64-byte vectors only ever live inside one function

MODULES = ("threads", "plan", "recurrent", "elementwise", "probe", "ctc", "xent", "dense",
           "gather", "optim_step")
KERNELS = "fastrnn/kernels"

extensions = [
    Extension(
        f"fastrnn.kernels.{name}",
        sources=[f"{KERNELS}/{name}.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=glob.glob("csrc/*.h") + glob.glob(f"{KERNELS}/*.pxd"),
        extra_compile_args=COMPILE_ARGS,
    )
    for name in MODULES
]

# pip and python -m build run build_ext without -j: compile the extensions side by side
# (a -j on the command line still wins).
setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES),
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
