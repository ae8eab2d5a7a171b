"""CPU threads chosen step by step from the time the steps take.

A one-token step splits each product over torch's threads and waits for the slowest. Beside a
busy process (a laptop's or a shared server's normal state) one thread shares its core: the
step then takes as long as that thread's half share, and two threads on two cores run about 3x
slower than quiet while one thread runs as fast as quiet (docs/performance.md). No thread count
is right for both, and the load changes during a run, so `AdaptiveThreads` measures: it runs
the one-token steps on its current count, every so often tries a neighbouring count for up to a few
steps, and keeps whichever was faster (by the margins below); passes of many tokens run on the
current count. The first trial comes after the first step: a call beside a busy core should not
run long on too many threads before it knows. A trial that loses waits twice as long before the next
(up to `longest_wait` steps), so a quiet machine pays little for the watching; a step on the
current count that takes LOSING_STEP times its recent median (the load changed) cuts the wait
back to `first_wait`, so a kept policy notices a busy core within a few steps.

The thread count changes no number: every kernel the engine uses computes a row the same way on
any number of threads (tests/test_engine_generation.py checks tokens against a fixed count).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch

# A trial count is kept if the median of its steps' times is below this share of the current
# count's median. Fewer threads must win clearly (20%): one-token steps barely slow down on fewer
# threads under light load, but passes of many tokens halve their speed on one of two. More
# threads must win by 10% (quiet, two threads take half the time of one): on a loaded machine
# their steps are now fast, now very slow. Medians: beside a busy core a step's time has a long
# tail (half a second, now and then).
FEWER_MARGIN = 0.8
MORE_MARGIN = 0.9
# A trial ends at its first step no faster than the current count's median, and a trial whose
# last step took this many times that median waits 4x longer for the next (else 2x): beside a busy
# core, a step on too many threads can take a hundred times a quiet one.
LOSING_STEP = 2.0


@dataclass
class AdaptiveThreads:
    """Which thread count the next one-token step runs on (`next_count`), learnt from the times
    of the steps before (`record`). Counts range over 1 .. `most`, starting at `most`."""

    most: int
    probe_steps: int = 3  # steps timed at a trial count (and kept at the current one)
    first_wait: int = 1  # steps at the current count before the first trial, and after a win
    longest_wait: int = 128
    current: int = field(init=False)
    trial: int | None = field(init=False, default=None)
    wait: int = field(init=False)
    interval: int = field(init=False)
    downward: bool = field(init=False, default=True)  # the direction of the next trial
    current_times: list[float] = field(init=False, default_factory=list)
    trial_times: list[float] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.most < 1:
            raise ValueError(f"most must be at least 1 thread, got {self.most}")
        self.current = self.most
        self.wait = self.interval = self.first_wait

    def next_count(self) -> int:
        """The thread count for the next one-token step: the current one, or a trial's."""
        if self.trial is None and self.wait <= 0 and self.current_times:
            self.trial = self._neighbour()
        return self.current if self.trial is None else self.trial

    def record(self, count: int, seconds: float) -> None:
        """The time of a one-token step just run on `count` threads (as `next_count` said)."""
        if count == self.trial:
            self.trial_times.append(seconds)
            behind = seconds >= statistics.median(self.current_times)  # it cannot be winning
            if behind or len(self.trial_times) == self.probe_steps:
                self._decide()
        elif count == self.current:
            if self.current_times and seconds > LOSING_STEP * statistics.median(self.current_times):
                self.wait = self.interval = self.first_wait  # the load changed: try again soon
            self.current_times = [*self.current_times, seconds][-self.probe_steps :]
            self.wait -= 1

    def _neighbour(self) -> int | None:
        if self.most == 1:
            return None
        if self.current == self.most or (self.current > 1 and self.downward):
            return self.current - 1
        return self.current + 1

    def _decide(self) -> None:
        trial, self.trial = self.trial, None
        assert trial is not None
        margin = FEWER_MARGIN if trial < self.current else MORE_MARGIN
        if statistics.median(self.trial_times) < margin * statistics.median(self.current_times):
            self.current, self.current_times = trial, list(self.trial_times)
            self.interval = self.first_wait
        else:  # a hopeless trial (its last step LOSING_STEP times slower) waits longer still
            hopeless = self.trial_times[-1] > LOSING_STEP * statistics.median(self.current_times)
            self.interval = min((4 if hopeless else 2) * self.interval, self.longest_wait)
            self.downward = not self.downward
        self.trial_times = []
        self.wait = self.interval


def set_threads(count: int) -> None:
    """torch's CPU thread count, set only when it changes."""
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
