"""Output arrays reused from call to call once no one holds them any more.

A training step returns arrays of the same sizes at every call (a layer's
output, the gradient of its input) and drops them before the next step.
Allocated anew, an array of a megabyte or so is fresh memory each time where
the C library hands such blocks back to the system in between: its first
writes fault in every page, which on a small model costs as much as a tenth
of the step.  Instead a layer keeps the buffer of the array it last returned
under each name and hands it out again when nothing else (the caller's array,
any view of it, a cache, an exported buffer) still refers to it, so nothing a
caller can still read is ever overwritten; otherwise it allocates as before.
A layer so keeps, per name, the memory of its last such array alive after the
caller let it go.
"""

import sys

from fastrnn.runtime.aligned import CACHE_LINE, nbytes_of, raw_buffer, view_aligned


class Spares:
    """The buffers of a layer's returned arrays, by name.  A deep copy or a pickle of
    the layer gets an empty one (a shallow copy shares it, as it shares the
    params; the pop-then-count protocol keeps that safe)."""

    def __init__(self):
        self._raw = {}

    def __reduce__(self):
        return Spares, ()

    def __copy__(self):
        return Spares()

    def __deepcopy__(self, memo):
        return Spares()

    def empty(self, name, shape, dtype):
        """Like np.empty(shape, dtype) (C order, starting on a 64-byte boundary), over
        the buffer of the array last returned under name when nothing refers to
        that array or its memory any more."""
        shape = tuple(shape)
        nbytes = nbytes_of(shape, dtype)
        raw = self._raw.pop(name, None)    # popped first: two threads never share one
        # Unshared, raw has only this frame's reference, as `alone` has: compared
        # with it rather than with a constant, since how getrefcount counts a
        # local differs between Python versions.
        alone = raw_buffer(0)
        if raw is None or raw.size != nbytes + CACHE_LINE or \
                sys.getrefcount(raw) != sys.getrefcount(alone):
            raw = raw_buffer(nbytes)
        self._raw[name] = raw
        return view_aligned(raw, shape, dtype)

    def zeros(self, name, shape, dtype):
        """empty(), filled with zeros."""
        a = self.empty(name, shape, dtype)
        a.fill(0)
        return a
