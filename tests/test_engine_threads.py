"""AdaptiveThreads' decisions, fed step times of known thread costs (no timing is measured)."""

from __future__ import annotations

import pytest

from kronos.engine.threads import AdaptiveThreads


def counts_run(policy: AdaptiveThreads, seconds_at: dict[int, float], steps: int) -> list[int]:
    """The thread count of each of `steps` one-token steps when a step on n threads takes seconds_at[n]."""
    counts = []
    for _ in range(steps):
        count = policy.next_count()
        policy.record(count, seconds_at[count])
        counts.append(count)
    return counts


def test_beside_a_busy_core_it_settles_on_fewer_threads_and_tries_more_ever_less_often():
    policy = AdaptiveThreads(2)
    counts = counts_run(policy, {2: 0.020, 1: 0.008}, 120)
    assert counts[: policy.first_wait] == [2] * policy.first_wait  # starts on the machine's count
    assert policy.current == 1
    assert counts[policy.first_wait : policy.first_wait + 3] == [1, 1, 1]  # the trial, then kept
    trials_up = [i for i, c in enumerate(counts) if c == 2 and i >= policy.first_wait]
    gaps = [b - a for a, b in zip(trials_up, trials_up[1:])]
    assert len(trials_up) >= 3 and gaps == sorted(gaps) and gaps[-1] > gaps[0]  # backing off
    assert counts.count(2) < 8  # the losing trials up cost one step each, ever less often


def test_quiet_it_keeps_the_machines_count_when_fewer_threads_are_not_clearly_faster():
    policy = AdaptiveThreads(2)
    counts = counts_run(policy, {2: 0.0050, 1: 0.0045}, 120)  # 10% faster on one: not enough
    assert policy.current == 2
    assert counts.count(1) <= 3 * 7  # trials of three steps, ever less often
    assert counts[-20:] == [2] * 20


def test_quiet_a_trial_of_fewer_threads_costs_one_step_when_they_are_slower():
    policy = AdaptiveThreads(2)
    counts = counts_run(policy, {2: 0.0050, 1: 0.0080}, 120)
    assert policy.current == 2
    assert counts.count(1) <= 7  # its first step is behind: the trial ends there


def test_it_returns_to_more_threads_once_the_load_is_gone():
    policy = AdaptiveThreads(2)
    counts_run(policy, {2: 0.020, 1: 0.008}, 30)
    assert policy.current == 1
    counts_run(policy, {2: 0.005, 1: 0.008}, 200)
    assert policy.current == 2


def test_with_more_cores_it_steps_down_one_thread_at_a_time_and_stops_where_it_is_fastest():
    policy = AdaptiveThreads(4)
    counts = counts_run(policy, {4: 0.030, 3: 0.010, 2: 0.012, 1: 0.020}, 300)
    assert policy.current == 3
    assert set(counts) <= {4, 3, 2}  # 1 is never tried: 2 did not win over 3


def test_one_thread_is_never_changed():
    policy = AdaptiveThreads(1)
    assert counts_run(policy, {1: 0.01}, 50) == [1] * 50


def test_at_least_one_thread():
    with pytest.raises(ValueError, match="most must be at least 1"):
        AdaptiveThreads(0)


def test_a_kept_policy_notices_new_load_within_a_few_steps():
    """Quiet for long (so its trials of fewer threads wait the longest), then a busy core: a step
    on the current count that is suddenly much slower brings the next trial forward."""
    policy = AdaptiveThreads(2)
    counts_run(policy, {2: 0.005, 1: 0.008}, 400)
    assert policy.current == 2 and policy.interval == policy.longest_wait
    counts = counts_run(policy, {2: 0.040, 1: 0.009}, 12)
    assert policy.current == 1
    assert counts.index(1) <= 3
