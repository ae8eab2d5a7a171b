"""Micro-batching: requests that arrive within a few milliseconds share one generation call.

Generating many series in one call costs less than one call each, because each step is one pass
of the model over every sampled row. A request becomes a job with a key (what must match to
share a call), a size (its series) and a capacity (the most series a call it leads may hold: a
job that may share with none has its own size, and runs at once instead of waiting in vain).
The batcher waits up to `wait_s` after the oldest waiting job for others with its key, until
their sizes reach its capacity, then runs them in its single worker thread (torch
releases the GIL, so the event loop keeps serving) and resolves each job's future. A job whose
client went away is skipped if it has not started; once every job of a running call has gone,
the call's cancel event is set, and the generation stops at its next step (the worker is free for
the next call). A failing call is retried job by job, so one bad job fails alone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """More series are waiting than the queue may hold."""


@dataclass(eq=False)
class Job:
    key: Hashable
    size: int  # series
    capacity: int  # the most series a call led by this job holds
    payload: Any
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Gathers jobs with equal keys into calls of `run(payloads, cancel) -> results`, one call at a
    time; `cancel` is a `threading.Event` set once no job of the call waits for its result.

    `max_queue` bounds the series waiting; `on_call(series, jobs, seconds)` is told about every
    call, for metrics.
    """

    def __init__(
        self,
        run: Callable[[list[Any], threading.Event], list[Any]],
        wait_s: float,
        max_queue: int,
        on_call: Callable[[int, int, float], None] | None = None,
    ):
        self.run, self.wait_s, self.max_queue, self.on_call = run, wait_s, max_queue, on_call
        self.pending: deque[Job] = deque()
        self.arrived = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kronos-generate")
        self.task: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        """Series waiting for a call (not those in the running one)."""
        return sum(job.size for job in self.pending)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        for job in self.pending:
            job.future.cancel()
        self.pending.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, key: Hashable, size: int, capacity: int, payload: Any) -> asyncio.Future:
        """Queue a job; its future gives the result. Cancel the future to withdraw the job."""
        if self.queued + size > self.max_queue:
            raise Overloaded(f"{self.queued} series are waiting, the queue holds {self.max_queue}")
        job = Job(key, size, capacity, payload, asyncio.get_running_loop().create_future())
        self.pending.append(job)
        self.arrived.set()
        return job.future

    async def _serve(self) -> None:
        while True:
            await self._gather()
            batch = self._take()
            if batch:
                await self._call(batch)

    async def _gather(self) -> None:
        """Wait for a job, then until its batch is full or the oldest job has waited `wait_s`."""
        while not self.pending:
            self.arrived.clear()
            await self.arrived.wait()
        first = self.pending[0]
        while sum(job.size for job in self.pending if job.key == first.key) < first.capacity:
            remaining = first.arrived + self.wait_s - time.monotonic()
            if remaining <= 0 or first.future.done():
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[Job]:
        """The oldest live job and the next ones with its key, within its capacity."""
        live = [job for job in self.pending if not job.future.done()]
        if not live:
            self.pending.clear()
            return []
        lead = live[0]
        batch: list[Job] = []
        rest: list[Job] = []
        size = 0
        for job in live:
            if job.key == lead.key and (not batch or size + job.size <= lead.capacity):
                batch.append(job)
                size += job.size
            else:
                rest.append(job)
        self.pending = deque(rest)
        return batch

    async def _call(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        cancel = threading.Event()

        def cancel_when_all_gone(_: asyncio.Future) -> None:
            if all(job.future.cancelled() for job in batch):
                cancel.set()

        for job in batch:
            job.future.add_done_callback(cancel_when_all_gone)
        try:
            results = await loop.run_in_executor(
                self.executor, self.run, [job.payload for job in batch], cancel
            )
        except Exception as err:
            if len(batch) == 1:
                _resolve(batch[0], error=err)
                return
            for job in batch:  # one bad job must not fail the others
                if not job.future.done():
                    await self._call([job])
            return
        if self.on_call is not None:
            self.on_call(sum(job.size for job in batch), len(batch), time.perf_counter() - started)
        for job, result in zip(batch, results):
            _resolve(job, result)


def _resolve(job: Job, result: Any = None, error: BaseException | None = None) -> None:
    if job.future.done():  # the client went away meanwhile
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)
