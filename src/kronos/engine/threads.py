"""CPU threads chosen step by step from the machine's load and the time the steps take.

A one-token step splits each product over torch's threads and waits for the slowest. Beside a
busy process (a laptop's or a shared server's normal state) one thread shares its core: the
step then takes as long as that thread's half share, and two threads on two cores run about 3x
slower than quiet while one thread runs as fast as quiet (docs/performance.md). No thread count
is right for both, and the load changes during a run, so `AdaptiveThreads` watches.

Where Linux says how busy the CPUs are (/proc/stat), it sees the load (`OthersLoad`): how much
of this process's CPUs other processes used in the last tenth of a second or more, and runs on
as many threads as they leave free (at least one, at most `most`), for every step. Elsewhere,
and until the first reading, it measures: it runs the one-token steps on its current count,
every so often tries a neighbouring count for up to a few steps, and keeps whichever was faster
(by the margins below); passes of many tokens run on the current count. The first trial comes
after the first step: a call beside a busy core should not run long on too many threads before
it knows. A trial that loses waits twice as long before the next (up to `longest_wait` steps), so
a quiet machine pays little for the watching; a step on the current count that takes LOSING_STEP
times its recent median (the load changed) cuts the wait back to `first_wait`, so a kept policy
notices a busy core within a few steps.

The thread count changes no number: every kernel the engine uses computes a row the same way on
any number of threads (tests/test_engine_generation.py checks tokens against a fixed count).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
# Seconds between two readings of the load: /proc/stat counts in ticks of 10 ms, so a tenth of a
# second reads a busy core to about a tenth of a core.
LOAD_INTERVAL = 0.1
PROC_STAT = Path("/proc/stat")
OWN_TASKS = Path("/proc/self/task")  # a directory per thread of this process


@dataclass
class OthersLoad:
    """How many CPUs' worth of time other processes took on the CPUs this process may run on:
    their busy time in /proc/stat (user, nice, system, interrupts and time stolen by the
    hypervisor) less this process's own CPU time, over the `interval` seconds or more since the
    last reading. The first reading, before any interval has passed, counts the other tasks
    runnable at that moment. `free_cpus` turns it into a thread count."""

    cpus: frozenset[int]
    stat: Path = PROC_STAT
    tasks: Path = OWN_TASKS
    interval: float = LOAD_INTERVAL
    wall: Callable[[], float] = time.monotonic
    own: Callable[[], float] = time.process_time  # this process's CPU seconds, all its threads
    others: float | None = field(init=False, default=None)  # the latest reading, in CPUs
    _last: tuple[float, float, float] | None = field(init=False, default=None)

    @classmethod
    def of_this_process(cls) -> OthersLoad | None:
        """The load on the CPUs this process may use, or None where it cannot be read (not Linux)."""
        cpus = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()
        load = cls(cpus)
        return load if cpus and load._stat_text() is not None else None

    def free_cpus(self) -> int | None:
        """CPUs the others left free at the latest reading (rounded), taking a new reading if
        `interval` has passed; None if /proc/stat could not be read."""
        self._read()
        if self.others is None:
            return None
        return math.floor(len(self.cpus) - self.others + 0.5)

    def _read(self) -> None:
        now = self.wall()
        if self._last is not None and now - self._last[0] < self.interval:
            return
        text = self._stat_text()
        if text is None:
            return
        sample = (now, busy_seconds(text, self.cpus), self.own())
        if self._last is None:
            self.others = runnable_others(text, self.tasks)
        else:
            wall, all_busy, own = (a - b for a, b in zip(sample, self._last, strict=True))
            self.others = max(0.0, all_busy - own) / wall
        self._last = sample

    def _stat_text(self) -> str | None:
        try:
            return self.stat.read_text()
        except OSError:
            return None


def busy_seconds(stat: str, cpus: frozenset[int]) -> float:
    """Busy CPU seconds of `cpus` since boot, from the per-CPU lines of a /proc/stat text."""
    ticks = 0
    for line in stat.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


def runnable_others(stat: str, tasks: Path) -> float | None:
    """Tasks runnable now on the whole machine (a /proc/stat text's procs_running) less this
    process's threads that are (their state R in `tasks`/*/stat); None if either is unreadable."""
    running = [int(line.split()[1]) for line in stat.splitlines() if line.startswith("procs_running ")]
    try:
        states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()]
    except (OSError, IndexError):
        return None
    return float(max(0, running[0] - states.count("R"))) if running else None


@dataclass
class AdaptiveThreads:
    """Which thread count the next one-token step runs on (`next_count`) and a pass of many
    tokens (`pass_count`): the CPUs that `load` says others leave free, or, where it cannot be
    read (load None) and until its first reading, learnt from the times of the steps before
    (`record`). Counts range over 1 .. `most`, starting at `most`."""

    most: int
    load: OthersLoad | None = field(default_factory=OthersLoad.of_this_process)
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
        """The thread count for the next one-token step: the load's, the current one, or a trial's."""
        if self._seen():
            return self.current
        if self.trial is None and self.wait <= 0 and self.current_times:
            self.trial = self._neighbour()
        return self.current if self.trial is None else self.trial

    def pass_count(self) -> int:
        """The thread count for a pass of many tokens: the load's, else the current one."""
        self._seen()
        return self.current

    def _seen(self) -> bool:
        """Whether the load is seen; if so, the current count is what it leaves free."""
        free = None if self.load is None else self.load.free_cpus()
        if free is None:
            return False
        self.current, self.trial, self.trial_times = max(1, min(self.most, free)), None, []
        return True

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
