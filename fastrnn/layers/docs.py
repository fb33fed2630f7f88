"""Docstring pieces shared by the three layer classes (one text, three classes)."""

PARAMETERS = """
    Parameters
    ----------
    input_size : int
        Number of features D of the input.
    hidden_size : int
        Number of features H of the hidden state.
    num_layers : int, default 1
        Stacked layers; layer l > 0 reads the output of layer l - 1.
    bias : bool, default True
        Whether each layer and direction has the two bias vectors b_ih and b_hh.
    batch_first : bool, default False
        Inputs and outputs are (B, T, features) instead of (T, B, features).
        States are always (num_layers * num_directions, B, H).
    dropout : float in [0, 1), default 0
        Dropout between stacked layers, as in torch.nn: in training forward
        only, layer l + 1 (l < num_layers - 1) reads y_l * m_l / (1 - p)
        instead of y_l, with m_l ~ Bernoulli(1 - p) element-wise, drawn from
        a generator seeded by ``seed``.  The masks stay in the cache (T * B *
        num_dirs * H numbers per layer but the last) so that backward applies
        the same ones.  The inference call never drops.  May be changed after
        construction (``layer.dropout = p``); p > 0 with num_layers = 1 warns.
    bidirectional : bool, default False
        Add a reverse direction; outputs concatenate [forward, reverse].
    reverse : bool, default False
        Run each layer's single direction from the last time step to the first
        (ONNX's direction="reverse"); y[t] is still the output at time t.
        Parameter names keep the forward ones (weight_ih_l0, ...).  Cannot be
        combined with bidirectional.
    dtype : float32 or float64, default float32
        Dtype of parameters, computation and results; inputs of another
        real dtype are converted.
    seed : int, numpy Generator or None
        Seeds the initialisation U(-1/sqrt(H), 1/sqrt(H)) of every parameter.
"""

SHAPES = """
    Notes
    -----
    Shapes of the call's arguments and results:

    x
        (T, B, D), (B, T, D) with batch_first, or (T, D) unbatched.
    y
        (T, B, num_dirs * H), batch-first or unbatched like x.
    state
        {state} each (num_layers * num_dirs, B, H), or (num_layers * num_dirs, H)
        unbatched; layer l, direction d is row l * num_dirs + d.  A missing state0
        or dstate_n means zeros.
    lengths
        Optional (B,) ints in 1..T, for a batch of sequences padded at the end.
        Sequence b covers steps 0..lengths[b]-1: y is zero past it, its state_n is
        taken at its own last step, a reverse direction starts there, and nothing
        past it (x or dy) reaches any result or gradient.  Same results as
        torch.nn on pack_padded_sequence(x, lengths, enforce_sorted=False).
        Steps past a row's end are skipped, so varied lengths cost less than
        the padded call.  A batch sorted longest first is used as it is;
        another is reordered (a copy) and the results put back in the
        caller's order (training also copies x to zero its padding).

    Attributes
    ----------
    params, grads : dict of name -> ndarray
        torch's state_dict names and shapes (weight_ih_l0 {wshape}, weight_hh_l0,
        bias_ih_l0, bias_hh_l0, ..._reverse).  backward() adds into grads.

    Methods
    -------
    layer(x, state0=None, lengths=None) -> (y, state_n)
        Inference; keeps nothing for backward.
    forward(x, state0=None, lengths=None) -> (y, state_n, cache)
        Training forward; backward honours its lengths.
    backward(dy, cache, dstate_n=None) -> (dx, dstate0)
        Backpropagation through time; adds parameter gradients into grads.
    state_dict(), load_state_dict(mapping), zero_grad(), reset_parameters(seed)
"""
