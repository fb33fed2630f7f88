"""fastrnn: fast CPU kernels for recurrent neural networks.

Vanilla RNN (tanh, relu), LSTM and GRU layers with torch.nn's maths, names
and shapes, forward and backward through time, in float32 or float64.  The
time loops run in compiled Cython without the GIL, on packed-weight GEMM
and fused element-wise kernels in vectorised C, split over fastrnn's own
worker threads.

>>> import numpy as np, fastrnn
>>> lstm = fastrnn.LSTM(8, 16, num_layers=2, seed=0)
>>> y, (h, c) = lstm(np.zeros((5, 3, 8), np.float32))
>>> y.shape, h.shape
((5, 3, 16), (2, 3, 16))
"""

import sys as _sys

# Run from the repository root after `pip install .`, this is the unbuilt source folder: it
# hands the import over to the installed copy (fastrnn/_source_tree.py), and the imports below
# then resolve there.
from fastrnn._source_tree import defer_to_installed as _defer_to_installed
_defer_to_installed(__name__, __file__)
del _defer_to_installed

# The layer modules first: each registers its cell kind (fastrnn/layers/cell_kinds.py),
# which the modules below look their layer classes up in.
from fastrnn.layers.rnn import RNN
from fastrnn.layers.lstm import LSTM
from fastrnn.layers.gru import GRU
from fastrnn.layers.embedding import Embedding
from fastrnn.layers.linear import Linear
from fastrnn.layers.cells import GRUCell, LSTMCell, RNNCell
from fastrnn.layers.attention import AdditiveAttention, DotAttention
from fastrnn.layers.chain import Chain, ChainStepper
from fastrnn.training.clip import clip_grad_norm, clip_grad_value
from fastrnn.training.ctc import ctc_beam_search, ctc_greedy_decode, ctc_loss
from fastrnn.training.decoding import beam_search, greedy_decode
from fastrnn.training.loss import log_softmax, softmax_cross_entropy
from fastrnn.training.optim import SGD, Adam, AdamW
from fastrnn.training.sampling import sample
from fastrnn.deploy.frozen import FrozenLayer
from fastrnn.deploy.io import load, save
from fastrnn.deploy.stepper import Stepper
from fastrnn.kernels.threads import get_num_threads, set_num_threads
from fastrnn import onnx     # fastrnn.onnx.load; the onnx package itself is imported on use
from fastrnn import keras    # fastrnn.keras.load of .keras files; h5py is imported on use

from fastrnn._version import __version__

__all__ = ["RNN", "LSTM", "GRU", "Stepper", "FrozenLayer", "onnx", "keras", "get_num_threads",
           "set_num_threads", "save", "load", "__version__",
           "Embedding", "Linear", "softmax_cross_entropy", "log_softmax",
           "SGD", "Adam", "clip_grad_norm", "clip_grad_value",
           "sample", "greedy_decode", "beam_search",
           "RNNCell", "LSTMCell", "GRUCell", "ctc_loss", "ctc_greedy_decode", "ctc_beam_search",
           "AdditiveAttention", "DotAttention", "Chain", "AdamW", "ChainStepper"]

# Where these modules were before the subpackages (to 2026-11).  A pickle names each
# class by its module, and code may import the old paths (``import fastrnn.lstm``,
# ``fastrnn.io.save``): each stays a name of the module that holds the code now.
_MOVED = {"rnn": "layers.rnn", "lstm": "layers.lstm", "gru": "layers.gru",
          "embedding": "layers.embedding", "linear": "layers.linear",
          "clip": "training.clip", "decoding": "training.decoding", "loss": "training.loss",
          "optim": "training.optim", "sampling": "training.sampling",
          "frozen": "deploy.frozen", "io": "deploy.io", "stepper": "deploy.stepper",
          "_scratch": "runtime.scratch", "_split_choice": "runtime.split_choice"}
for _old, _new in _MOVED.items():
    _sys.modules.setdefault(f"{__name__}.{_old}", _sys.modules[f"{__name__}.{_new}"])
    if not _old.startswith("_"):
        globals()[_old] = _sys.modules[f"{__name__}.{_new}"]
del _old, _new, _sys
