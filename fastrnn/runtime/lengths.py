"""Variable-length batches: checking lengths= and sorting the batch for the kernels.

A batch of sequences padded at the end runs as one call: the kernels want
its rows sorted by length, longest first, so that the rows still running at
step t are a prefix of the batch, active[t] rows long.  Each step then runs
on that prefix only, which is why a padded batch with lengths costs no more
than without (less, when many rows are short).  The layer sorts on the way
in and restores the caller's order on the way out; a batch that is already
sorted is not copied.
"""

import numpy as np

# What the kernels take for "every sequence has all T steps".
NO_LENGTHS = np.empty(0, np.int32)


def check_lengths(lengths, T, B, unbatched):
    """lengths as a 1-D int64 array of B values in 1..T, or None (no lengths given).

    Raises TypeError for non-integer values and ValueError for a wrong shape or
    a length outside 1..T.
    """
    if lengths is None:
        return None
    if unbatched:
        raise ValueError("lengths: needs a batched input x (T, B, D) or (B, T, D); "
                         "an unbatched sequence has one length, its own T")
    arr = np.asarray(lengths)
    check_lengths_array(arr, B)
    if B and (arr.min() < 1 or arr.max() > T):
        bad = arr[(arr < 1) | (arr > T)][0]
        raise ValueError(f"lengths: each length must be in 1..T = 1..{T} "
                         f"(sequences are padded at the end), got {int(bad)}")
    return arr.astype(np.int64)


def check_lengths_array(arr, B, kind="an array"):
    """The checks on lengths that need no values: integer dtype (TypeError), shape (B,)
    (ValueError).  arr is a NumPy or dask array (kind names it in the message)."""
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths: expected integers, got {kind} of dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected shape ({B},), one length per sequence of "
                         f"the batch, got {arr.shape}")


class SortedBatch:
    """How a batch with lengths is reordered for the kernels.

    Attributes
    ----------
    order : ndarray or None
        Batch rows in kernel order (longest first, ties in the caller's
        order); None when the caller's order already is.
    lengths : ndarray (B,)
        The lengths in kernel order.
    active : ndarray of int32 (T,)
        active[t] = number of sequences longer than t.
    """

    def __init__(self, lengths, T):
        order = np.argsort(-lengths, kind="stable")
        self.order = None if np.array_equal(order, np.arange(len(order))) else order
        self._inverse = None if self.order is None else np.argsort(order)
        self.lengths = lengths[order]
        # sorted lengths descending: the rows longer than t are a prefix
        self.active = np.searchsorted(-self.lengths, -np.arange(T), side="left").astype(np.int32)

    @classmethod
    def from_lengths(cls, lengths, T):
        """A SortedBatch, or None when every sequence has all T steps (nothing to do)."""
        if lengths is None or np.all(lengths == T):
            return None
        return cls(lengths, T)

    def to_kernel(self, a):
        """a with its batch axis (axis 1) in kernel order (a itself if no reordering)."""
        return a if self.order is None else np.take(a, self.order, axis=1)

    def to_caller(self, a):
        """a with its batch axis (axis 1) back in the caller's order."""
        return a if self._inverse is None else np.take(a, self._inverse, axis=1)

    def to_kernel_zero_padded(self, x):
        """A copy of x (T, B, F) in kernel order, the steps past each sequence's end zeroed
        (so that not even a nan there can reach a weight gradient, 0 * nan being nan)."""
        out = self.to_kernel(x)
        if out is x:
            out = x.copy()
        for b in range(int(self.active[-1]), len(self.lengths)):    # the rows shorter than T
            out[self.lengths[b]:, b] = 0
        return out
