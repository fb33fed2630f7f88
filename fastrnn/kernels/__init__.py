"""fastrnn's compiled wing: the recurrent time loops, the worker pool and the
one-step plans, in Cython over the plain C of csrc/ (see ARCHITECTURE.md).

Nothing here is public API: the layers (fastrnn.RNN, LSTM, GRU) validate
their inputs, allocate the buffers these kernels ask for and call them.
"""

# Every compiled module of the package, as setup.py's MODULES builds them (tests/test_package.py
# checks the two agree); `python -m fastrnn info` lists them.
COMPILED = ("threads", "plan", "recurrent", "elementwise", "probe", "ctc", "xent", "dense",
            "gather", "optim_step")
