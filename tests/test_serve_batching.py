"""The micro-batcher on its own: which jobs share a call, and that a job that may share with none
does not wait for company (the waits here are a minute, so waiting would time the test out)."""

import asyncio
import threading

import pytest

from kronos.serve.batching import MicroBatcher, Overloaded


def _run_with(calls: list[list[str]]):
    def run(payloads: list[str], cancel) -> list[str]:
        calls.append(list(payloads))
        return [p.upper() for p in payloads]

    return run


def test_jobs_with_one_key_share_a_call_up_to_the_leads_capacity():
    async def scenario() -> list[list[str]]:
        calls: list[list[str]] = []
        batcher = MicroBatcher(_run_with(calls), wait_s=60, max_queue=100)
        futures = [batcher.submit("k", 1, 2, p) for p in "abc"] + [batcher.submit("other", 1, 1, "d")]
        futures.append(batcher.submit("k", 1, 2, "e"))
        batcher.start()
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures), 10)
        finally:
            await batcher.stop()
        assert results == ["A", "B", "C", "D", "E"]
        return calls

    # a and b fill a's capacity; c leads the next call and takes e past d (another key), then d
    assert asyncio.run(scenario()) == [["a", "b"], ["c", "e"], ["d"]]


def test_a_job_whose_capacity_is_its_size_runs_without_waiting():
    async def scenario() -> list[list[str]]:
        calls: list[list[str]] = []
        batcher = MicroBatcher(_run_with(calls), wait_s=60, max_queue=100)
        batcher.start()
        try:
            assert await asyncio.wait_for(batcher.submit(object(), 2, 2, "alone"), 10) == "ALONE"
        finally:
            await batcher.stop()
        return calls

    assert asyncio.run(scenario()) == [["alone"]]


def test_the_queue_bound_counts_series_and_turns_jobs_away():
    async def scenario() -> None:
        batcher = MicroBatcher(_run_with([]), wait_s=60, max_queue=5)
        batcher.submit("k", 4, 32, "a")
        with pytest.raises(Overloaded, match="4 series are waiting, the queue holds 5"):
            batcher.submit("k", 2, 32, "b")
        await batcher.stop()

    asyncio.run(scenario())


def test_a_running_call_is_cancelled_once_every_job_in_it_has_gone():
    """The call's cancel event: not set while one job still waits, set when the last one leaves."""

    async def scenario() -> tuple[bool, bool]:
        started, release = threading.Event(), threading.Event()
        seen: list[threading.Event] = []

        def run(payloads: list[str], cancel: threading.Event) -> list[str]:
            seen.append(cancel)
            started.set()
            release.wait(10)
            return payloads

        batcher = MicroBatcher(run, wait_s=0.01, max_queue=100)
        batcher.start()
        first, second = batcher.submit("k", 1, 2, "a"), batcher.submit("k", 1, 2, "b")
        try:
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            first.cancel()
            await asyncio.sleep(0)
            after_one = seen[0].is_set()
            second.cancel()
            await asyncio.sleep(0)
            after_both = seen[0].is_set()
        finally:
            release.set()
            await batcher.stop()
        return after_one, after_both

    assert asyncio.run(scenario()) == (False, True)
