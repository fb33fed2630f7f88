"""Build fastrnn's compiled kernels.

fastrnn/_kernels.pyx holds every cell's time loops (one extension, so the
packed-weight GEMM and the fused element-wise passes of csrc/, header-only,
are compiled once); fastrnn/_threads.pyx the worker pool (pthreads; no
OpenMP, no BLAS); fastrnn/_plan.pyx the one-step plans of fastrnn.Stepper;
fastrnn/_elementwise.pyx the activations exposed for tests.

Environment:
  FASTRNN_DEBUG=1   turn Cython's bounds, wraparound and initialisation checks
                    back on and build with -O1 -g (for tests under a debugger).
"""

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

MODULES = ("threads", "plan", "kernels", "elementwise")

extensions = [
    Extension(
        f"fastrnn._{name}",
        sources=[f"fastrnn/_{name}.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=["csrc/fastrnn_math.h", "csrc/fastrnn_cells.h", "csrc/cells_impl.h",
                 "csrc/fastrnn_gemm.h", "csrc/gemm_impl.h", "csrc/fastrnn_pool.h",
                 "fastrnn/_packed.pxd", "fastrnn/_threads.pxd", "fastrnn/_plan.pxd",
                 "fastrnn/_cells.pxd", "fastrnn/_seq.pxd", "fastrnn/_layer_call.pxd",
                 "fastrnn/_time_loop.pxd", "fastrnn/_rnn_step.pxd", "fastrnn/_lstm_step.pxd",
                 "fastrnn/_gru_step.pxd"],
        extra_compile_args=COMPILE_ARGS,
    )
    for name in MODULES
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
