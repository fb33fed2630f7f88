"""Work buffers that a layer keeps from one call to the next.

A training step allocates several work buffers of a few hundred KiB to a
few MiB: the packed weights and the gate gradients of every layer and
direction.  Freed together at the end of the step, that much memory goes
back to the operating system, and the next step page-faults it all in
again.  So each layer keeps its work buffers and lends them to its next
training call (inference calls free less at once, and the C allocator
keeps it; a cheaper Reused, below, spares them the allocations).  Only
buffers of at most MAX_KEPT_BYTES are kept, at most MAX_KEPT_PER_SIZE of
each size: larger calls amortise their page faults over far more
arithmetic, and a layer should not hold on to hundreds of MiB after a large
call.  64 MiB, as glibc hands buffers above 32 MiB back to the OS on free;
three of a size, as an LSTM step has three T*B*4H arrays in use at once.

A training forward's saved activations also come from the pool, though they
outlive the call: its cache hands them back (Kept) when it is deleted, so
that the next forward of a training loop finds them rather than pages the
OS clears again.  A buffer goes back only if nothing else refers to it.

The measurements behind these choices: docs/DECISIONS.md.

A lease is taken per call and handed back when the call ends, so calls from
several Python threads each get buffers of their own.  Results never depend
on a buffer's old contents: the kernels write every element they read.
"""

import sys
import threading

from fastrnn.runtime.aligned import CACHE_LINE, empty_aligned, nbytes_of, raw_buffer, view_aligned

MAX_KEPT_BYTES = 64 << 20
MAX_KEPT_PER_SIZE = 3
# Bytes of work arrays an inference call may leave to the next (Reused).
MAX_REUSED_BYTES = 4 << 20
# References to a buffer while Kept.release looks at it: Kept's list, the loop
# variable and sys.getrefcount's argument.  Any more: someone else holds it.
_RELEASE_REFS = 3


class Scratch:
    """A layer's kept work buffers (raw 64-byte aligned byte buffers by size)."""

    def __init__(self):
        self._free = {}
        self._lock = threading.Lock()

    def __reduce__(self):
        # copies and pickles of a layer start with no buffers (and no lock to copy)
        return (Scratch, ())

    def lease(self):
        """A Lease for one call: `with scratch.lease() as work: work.empty(...)`."""
        return Lease(self)

    def _take(self, nbytes):
        with self._lock:
            free = self._free.get(nbytes)
            if free:
                return free.pop()
        return raw_buffer(nbytes)

    def _give(self, raws):
        with self._lock:
            for raw in raws:
                nbytes = raw.size - CACHE_LINE
                if nbytes > MAX_KEPT_BYTES:
                    continue
                free = self._free.setdefault(nbytes, [])
                if len(free) < MAX_KEPT_PER_SIZE:
                    free.append(raw)

    def kept_bytes(self):
        """Bytes held between calls."""
        with self._lock:
            return sum(raw.size for free in self._free.values() for raw in free)


class Lease:
    """Work buffers lent to one call, handed back to their Scratch when it ends."""

    def __init__(self, scratch):
        self._scratch = scratch
        self._raws = []
        self._kept = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._scratch._give(self._raws)
        self._raws = []
        return False

    def empty(self, shape, dtype):
        """An uninitialised C-contiguous array starting on a 64-byte boundary,
        valid until the lease ends."""
        return self._lend(shape, dtype, self._raws)

    def empty_kept(self, shape, dtype):
        """Like empty, but the array outlives the lease: its buffer goes back to
        the pool when the Kept that kept() returns is released."""
        return self._lend(shape, dtype, self._kept)

    def _lend(self, shape, dtype, raws):
        """An array over a buffer from the pool, noted in raws (to hand back)."""
        raw = self._scratch._take(nbytes_of(shape, dtype))
        raws.append(raw)
        return view_aligned(raw, shape, dtype)

    def kept(self):
        """The buffers lent by empty_kept so far, as a Kept (the lease forgets them)."""
        kept, self._kept = Kept(self._scratch, self._kept), []
        return kept


class Kept:
    """Buffers that outlive their call (a training forward's saved activations)."""

    __slots__ = ("_scratch", "_raws")

    def __init__(self, scratch, raws):
        self._scratch = scratch
        self._raws = raws

    def release(self):
        """Hand the buffers back to their Scratch, each only if nothing else refers
        to it (an array over it still alive); release once the arrays are dropped."""
        raws, self._raws = self._raws, []
        self._scratch._give([raw for raw in raws if sys.getrefcount(raw) <= _RELEASE_REFS])


class Reused:
    """The work arrays of a layer's last inference call, lent again to its next.

    An inference call asks for its work arrays (the projection chunk, the packed
    weights) in a fixed order, so a call of the same shape as the one before
    asks for the same arrays again.  Allocating each afresh, several a call,
    is a sizeable part of a short single-sequence call (measured:
    docs/DECISIONS.md).  Calls whose work arrays hold
    more than MAX_REUSED_BYTES allocate what is past that afresh (their
    arithmetic dwarfs it), so a layer keeps at most that much between calls;
    the chunked projection keeps it independent of T.

    The layer's runtime holds one Reused between calls and a call takes it for
    its duration (fastrnn/runtime/runtime.py), so a concurrent call of the same layer
    finds none and starts its own.
    """

    __slots__ = ("_arrays", "_next", "_bytes")

    def __init__(self):
        self._arrays = []    # the arrays lent, in the order they were asked for
        self._next = 0       # the position of the next request in this call
        self._bytes = 0      # bytes of _arrays

    def __reduce__(self):
        # copies and pickles of a layer start with no arrays
        return (Reused, ())

    def rewind(self):
        """End a call: the next one asks from the first array again."""
        self._next = 0

    def empty(self, shape, dtype):
        """An uninitialised C-contiguous array starting on a 64-byte boundary: the
        array this position of the previous call had when its shape and dtype
        match, else a new one (which then replaces it and the later ones)."""
        i, arrays = self._next, self._arrays
        self._next = i + 1
        if not isinstance(shape, tuple):
            shape = (shape,)
        if i < len(arrays):
            a = arrays[i]
            if a.shape == shape and a.dtype == dtype:
                return a
            for old in arrays[i:]:
                self._bytes -= old.nbytes
            del arrays[i:]
        a = empty_aligned(shape, dtype)
        if i == len(arrays) and self._bytes + a.nbytes <= MAX_REUSED_BYTES:
            arrays.append(a)
            self._bytes += a.nbytes
        return a
