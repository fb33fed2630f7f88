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

# The layer modules first: each registers its cell kind (fastrnn/_cell_kinds.py), which
# the modules below look their layer classes up in.
from fastrnn.rnn import RNN
from fastrnn.lstm import LSTM
from fastrnn.gru import GRU
from fastrnn.io import load, save
from fastrnn.kernels.threads import get_num_threads, set_num_threads
from fastrnn.clip import clip_grad_norm, clip_grad_value
from fastrnn.decoding import beam_search, greedy_decode
from fastrnn.embedding import Embedding
from fastrnn.linear import Linear
from fastrnn.loss import log_softmax, softmax_cross_entropy
from fastrnn.optim import SGD, Adam
from fastrnn.sampling import sample
from fastrnn.stepper import Stepper
from fastrnn.frozen import FrozenLayer
from fastrnn import onnx     # fastrnn.onnx.load; the onnx package itself is imported on use

from fastrnn._version import __version__

__all__ = ["RNN", "LSTM", "GRU", "Stepper", "FrozenLayer", "onnx", "get_num_threads", "set_num_threads", "save", "load", "__version__",
           "Embedding", "Linear", "softmax_cross_entropy", "log_softmax",
           "SGD", "Adam", "clip_grad_norm", "clip_grad_value",
           "sample", "greedy_decode", "beam_search"]
