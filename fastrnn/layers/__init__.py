"""The layers users build models from: the recurrent layers (RNN, LSTM, GRU, on one base
class and one registry of cell kinds) and the non-recurrent ones (Embedding, Linear).

Import them from ``fastrnn``; the modules here are the implementation.
"""
