"""The micro-batcher on its own: which jobs share a call, and that a job that may share with none
does not wait for company (the waits here are a minute, so waiting would time the test out)."""

import asyncio

import pytest

from kronos.serve.batching import MicroBatcher, Overloaded


def _run_with(calls: list[list[str]]):
    def run(payloads: list[str]) -> list[str]:
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
