"""The training toolkit around the layers: losses, optimizers, gradient clipping, sampling
and decoding (greedy and beam search).

Import the public names from ``fastrnn``.
"""
