"""The command line (``python -m fastrnn``) and what it runs: the build report, the
benchmark against NumPy, PyTorch and ONNX Runtime, and the character-level language model.
"""
