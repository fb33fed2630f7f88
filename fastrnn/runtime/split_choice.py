"""Whether a layer shares a single sequence's steps over threads, chosen by timing.

A single sequence (batch 1) is split over fastrnn's threads by hidden units,
and every step is handed over between the cores.  On a quiet machine that
pays from 64 KiB of recurrent weights; on a shared VM the hand-over can cost
more than the split saves, for seconds at a time.  So a layer times its own
single-sequence forward calls both ways, keeps to the faster, and tries the
other way again every EXPLORE_EVERY calls.  Both ways give bitwise equal
results, so the choice changes only the speed.

The first call after a change of way is not timed: it finds the other way
cold (fastrnn's worker threads go to sleep 1 ms after their last job), and
timed, such calls made the split look slower than it was.  So each way is
tried for EXPLORE_CALLS calls in a row, and only the later ones are timed.
The measurements behind both: docs/DECISIONS.md.
"""

import time

EXPLORE_EVERY = 32   # in every this many calls, EXPLORE_CALLS try the way that is not the faster
EXPLORE_CALLS = 2    # calls in a row that try a way: the first warms it, the rest are timed
WEIGHT = 0.25        # weight of a new time in a way's running mean


class SplitChoice:
    """Running mean time per step of the two ways, and the choice between them."""

    def __init__(self):
        self.seconds = {True: None, False: None}
        self.calls = 0
        self.last = None     # the way of the call recorded last

    def choose(self):
        """True: split this call over threads; False: run it on one thread."""
        self.calls += 1
        for way in (True, False):       # time each way first
            if self.seconds[way] is None:
                return way
        faster = self.seconds[True] <= self.seconds[False]
        exploring = self.calls % EXPLORE_EVERY < EXPLORE_CALLS
        return (not faster) if exploring else faster

    def record(self, way, seconds_per_step):
        """Fold a call's time per step into its way's running mean, unless the
        call before went the other way (this one was cold; see above)."""
        switched, self.last = way != self.last, way
        if switched:
            return
        old = self.seconds[way]
        self.seconds[way] = seconds_per_step if old is None else \
            (1 - WEIGHT) * old + WEIGHT * seconds_per_step


class TimedCall:
    """Context of one call that may split: chooses its way on entry, sets it as
    the owner's attribute now_attr (True or False; None again on exit), and
    on a normal exit records the call's time per step for that way.  A class
    rather than a generator context manager, which costs a single-sequence
    call more to enter and leave (measured: docs/DECISIONS.md)."""

    __slots__ = ("_choice", "_owner", "_now_attr", "_steps", "_way", "_start")

    def __init__(self, choice, owner, now_attr, steps):
        self._choice = choice
        self._owner = owner
        self._now_attr = now_attr
        self._steps = steps

    def __enter__(self):
        self._way = self._choice.choose()
        setattr(self._owner, self._now_attr, self._way)
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        setattr(self._owner, self._now_attr, None)
        if exc_type is None:
            self._choice.record(self._way, (time.perf_counter() - self._start) / self._steps)
        return False
