"""Whether a layer shares a single sequence's steps over threads, chosen by timing.

A single sequence (batch 1) is split over fastrnn's threads by hidden units,
and every step is handed over between the cores.  On a quiet machine that
pays from 64 KiB of recurrent weights.  On a shared VM the hand-over can
cost more than the split saves, for seconds at a time: LSTM at
(100, 1, 32, 64) took 0.11 or 0.25 ms split depending on the minute, and a
steady 0.14 ms on one thread.  So a layer times its own single-sequence
forward calls both ways, keeps to the faster, and tries the other way again
every EXPLORE_EVERY calls.  Both ways give bitwise equal results, so the
choice changes only the speed.
"""

EXPLORE_EVERY = 32   # one call in this many tries the way that is not the faster
WEIGHT = 0.25        # weight of a new time in a way's running mean


class SplitChoice:
    """Running mean time per step of the two ways, and the choice between them."""

    def __init__(self):
        self.seconds = {True: None, False: None}
        self.calls = 0

    def choose(self):
        """True: split this call over threads; False: run it on one thread."""
        self.calls += 1
        for way in (True, False):       # time each way once first
            if self.seconds[way] is None:
                return way
        faster = self.seconds[True] <= self.seconds[False]
        return (not faster) if self.calls % EXPLORE_EVERY == 0 else faster

    def record(self, way, seconds_per_step):
        """Fold a call's time per step into its way's running mean."""
        old = self.seconds[way]
        self.seconds[way] = seconds_per_step if old is None else \
            (1 - WEIGHT) * old + WEIGHT * seconds_per_step
