"""AdaptiveThreads' decisions, fed step times of known thread costs (no timing is measured), and
OthersLoad's readings of /proc/stat."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from kronos.engine.threads import AdaptiveThreads, OthersLoad, runnable_others


def counts_run(policy: AdaptiveThreads, seconds_at: dict[int, float], steps: int) -> list[int]:
    """The thread count of each of `steps` one-token steps when a step on n threads takes seconds_at[n]."""
    counts = []
    for _ in range(steps):
        count = policy.next_count()
        policy.record(count, seconds_at[count])
        counts.append(count)
    return counts


def test_beside_a_busy_core_it_settles_on_fewer_threads_and_tries_more_ever_less_often():
    policy = AdaptiveThreads(2, load=None)
    counts = counts_run(policy, {2: 0.020, 1: 0.008}, 120)
    assert counts[: policy.first_wait] == [2] * policy.first_wait  # starts on the machine's count
    assert policy.current == 1
    assert counts[policy.first_wait : policy.first_wait + 3] == [1, 1, 1]  # the trial, then kept
    trials_up = [i for i, c in enumerate(counts) if c == 2 and i >= policy.first_wait]
    gaps = [b - a for a, b in zip(trials_up, trials_up[1:])]
    assert len(trials_up) >= 3 and gaps == sorted(gaps) and gaps[-1] > gaps[0]  # backing off
    assert counts.count(2) < 8  # the losing trials up cost one step each, ever less often


def test_quiet_it_keeps_the_machines_count_when_fewer_threads_are_not_clearly_faster():
    policy = AdaptiveThreads(2, load=None)
    counts = counts_run(policy, {2: 0.0050, 1: 0.0045}, 120)  # 10% faster on one: not enough
    assert policy.current == 2
    assert counts.count(1) <= 3 * 7  # trials of three steps, ever less often
    assert counts[-20:] == [2] * 20


def test_quiet_a_trial_of_fewer_threads_costs_one_step_when_they_are_slower():
    policy = AdaptiveThreads(2, load=None)
    counts = counts_run(policy, {2: 0.0050, 1: 0.0080}, 120)
    assert policy.current == 2
    assert counts.count(1) <= 7  # its first step is behind: the trial ends there


def test_it_returns_to_more_threads_once_the_load_is_gone():
    policy = AdaptiveThreads(2, load=None)
    counts_run(policy, {2: 0.020, 1: 0.008}, 30)
    assert policy.current == 1
    counts_run(policy, {2: 0.005, 1: 0.008}, 200)
    assert policy.current == 2


def test_with_more_cores_it_steps_down_one_thread_at_a_time_and_stops_where_it_is_fastest():
    policy = AdaptiveThreads(4, load=None)
    counts = counts_run(policy, {4: 0.030, 3: 0.010, 2: 0.012, 1: 0.020}, 300)
    assert policy.current == 3
    assert set(counts) <= {4, 3, 2}  # 1 is never tried: 2 did not win over 3


def test_one_thread_is_never_changed():
    policy = AdaptiveThreads(1, load=None)
    assert counts_run(policy, {1: 0.01}, 50) == [1] * 50


def test_at_least_one_thread():
    with pytest.raises(ValueError, match="most must be at least 1"):
        AdaptiveThreads(0, load=None)


def test_a_kept_policy_notices_new_load_within_a_few_steps():
    """Quiet for long (so its trials of fewer threads wait the longest), then a busy core: a step
    on the current count that is suddenly much slower brings the next trial forward."""
    policy = AdaptiveThreads(2, load=None)
    counts_run(policy, {2: 0.005, 1: 0.008}, 400)
    assert policy.current == 2 and policy.interval == policy.longest_wait
    counts = counts_run(policy, {2: 0.040, 1: 0.009}, 12)
    assert policy.current == 1
    assert counts.index(1) <= 3


def stat_text(busy_ticks: dict[int, int], idle_ticks: int = 1000) -> str:
    """A /proc/stat of CPUs with these busy ticks (split over user, system and steal)."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for cpu, busy in busy_ticks.items():
        user, system = busy // 2, busy // 4
        steal = busy - user - system
        lines.append(f"cpu{cpu} {user} 0 {system} {idle_ticks} 5 0 0 {steal} 0 0")
    return "\n".join([*lines, "intr 1 2 3", "ctxt 99"]) + "\n"


class Clocks:
    """A wall clock and this process's CPU seconds, moved by hand."""

    def __init__(self) -> None:
        self.wall_s, self.own_s = 0.0, 0.0

    def wall(self) -> float:
        return self.wall_s

    def own(self) -> float:
        return self.own_s


def test_others_load_is_the_cpus_busy_time_less_this_processes_own_on_its_cpus_only(tmp_path):
    stat, clocks = tmp_path / "stat", Clocks()
    tick = 1 / os.sysconf("SC_CLK_TCK")
    load = OthersLoad(frozenset({0, 1}), stat, interval=0.1, wall=clocks.wall, own=clocks.own)
    stat.write_text(stat_text({0: 100, 1: 100, 2: 0}))
    assert load.free_cpus() is None  # the first reading needs a second one
    # 0.5 s later: CPU 0 and 1 busy for 0.9 s between them, 0.4 s of it ours; CPU 2 (not ours) busy too
    clocks.wall_s, clocks.own_s = 0.5, 0.4
    stat.write_text(stat_text({0: 100 + round(0.5 / tick), 1: 100 + round(0.4 / tick), 2: 500}))
    assert load.free_cpus() == 1  # others took 0.5 s of 0.5 s: one CPU of two
    assert load.others == pytest.approx(1.0)
    # within the interval nothing is read again
    stat.write_text(stat_text({0: 10**6, 1: 10**6}))
    clocks.wall_s = 0.55
    assert load.free_cpus() == 1
    # later, quiet but for us: both CPUs free
    stat.write_text(stat_text({0: 100 + round(0.9 / tick), 1: 100 + round(0.4 / tick)}))
    clocks.wall_s, clocks.own_s = 1.0, 0.8
    assert load.free_cpus() == 2 and load.others == pytest.approx(0.0)


def test_others_load_is_none_where_proc_stat_cannot_be_read(tmp_path):
    load = OthersLoad(frozenset({0}), tmp_path / "missing")
    assert load.free_cpus() is None and load.others is None


def test_the_first_reading_counts_the_other_tasks_runnable_at_that_moment(tmp_path):
    """Before an interval has passed: procs_running less this process's threads in state R."""
    stat, tasks = tmp_path / "stat", tmp_path / "task"
    for tid, state in ((101, "R"), (102, "S"), (103, "R")):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (python (x) y) {state} 1 2 3\n")
    stat.write_text(stat_text({0: 0, 1: 0}) + "procs_running 3\nprocs_blocked 0\n")
    load = OthersLoad(frozenset({0, 1}), stat, tasks)
    assert load.free_cpus() == 1 and load.others == 1.0  # 3 runnable, 2 of them ours
    (tasks / "103" / "stat").write_text("103 (python) S 1 2 3\n")
    assert runnable_others(stat.read_text(), tasks) == 2.0


def test_a_seen_load_sets_every_count_and_no_trial_runs(tmp_path):
    """Once the load is read, one-token steps and passes run on the CPUs it leaves free, at least
    one and at most `most`, whatever the steps' times say."""
    stat, clocks = tmp_path / "stat", Clocks()
    tick = 1 / os.sysconf("SC_CLK_TCK")
    load = OthersLoad(frozenset({0, 1}), stat, interval=0.1, wall=clocks.wall, own=clocks.own)
    policy = AdaptiveThreads(2, load=load)
    stat.write_text(stat_text({0: 0, 1: 0}))
    assert policy.next_count() == 2  # not yet seen: the trials' current count
    clocks.wall_s = 0.2
    stat.write_text(stat_text({0: round(0.2 / tick), 1: round(0.1 / tick)}))  # others: 1.5 CPUs
    assert counts_run(policy, {1: 0.5, 2: 0.001}, 20) == [1] * 20  # two would be faster: not tried
    assert policy.pass_count() == 1
    clocks.wall_s = 0.4
    stat.write_text(stat_text({0: round(0.3 / tick), 1: round(0.1 / tick)}))  # others: 0.5 CPUs
    assert policy.pass_count() == 2


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="reads Linux's /proc/stat")
def test_others_load_sees_a_busy_process_on_this_machine():
    cpus = sorted(os.sched_getaffinity(0))
    load = OthersLoad.of_this_process()
    assert load is not None and load.cpus == frozenset(cpus)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(busy.pid, {cpus[0]})
        time.sleep(0.2)
        load.free_cpus()
        time.sleep(0.5)
        assert load.free_cpus() is not None
        assert load.others is not None and load.others > 0.6  # a whole CPU, less what others lost to us
    finally:
        busy.kill()
        busy.wait()
