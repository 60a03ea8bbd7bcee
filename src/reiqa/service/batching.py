"""Batch the images of concurrent requests together for the encoders.

Requests put their prepared images on one queue; a collector task takes what arrives within a
short window (or until a batch is full), scores it in one worker thread and hands each request
its own results (the service's are ``ScoreRecord``s, from ``ReIQA.score_batch``). The event
loop never waits on the model, and the model is used by one thread at a time (its intra-op
threads still use every core).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

#: a batch of items (of several callers) -> one result per item, in order
ScoreFn = Callable[[list[Any]], Sequence[Any]]


@dataclass
class _Job:
    images: list[Any]
    future: asyncio.Future[Sequence[Any]]


@dataclass
class BatchStats:
    """What the batcher did: batches run, images scored, and the largest batch (images and
    requests in it)."""

    batches: int = 0
    images: int = 0
    largest_images: int = 0
    largest_requests: int = 0
    sizes: list[int] = field(default_factory=list)

    def record(self, images: int, requests: int) -> None:
        self.batches += 1
        self.images += images
        self.largest_images = max(self.largest_images, images)
        self.largest_requests = max(self.largest_requests, requests)
        if len(self.sizes) < 10_000:
            self.sizes.append(requests)


class ScoreBatcher:
    """Scores lists of images for many concurrent callers, batching them together.

    Args:
        score: the items of a batch -> one result per item, in order (a list or an array); runs
            in the batcher's worker thread.
        window_s: how long the collector waits for more requests after the first one arrives.
        max_images: a batch closes once it holds this many images (a request is never split).
        on_batch: called with (images, requests) of each batch scored (the service's metrics).

    A caller that is cancelled while it waits (its client went away) is dropped: its images are
    not scored, and ``queued_images`` counts the images still waiting.
    """

    def __init__(
        self,
        score: ScoreFn,
        *,
        window_s: float = 0.01,
        max_images: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self._score, self.window_s, self.max_images = score, window_s, max_images
        self.stats = BatchStats()
        self.queued_images = 0
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the collector on the running event loop."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reiqa-score")
        self._task = asyncio.create_task(self._collect(), name="reiqa-batcher")

    async def stop(self) -> None:
        """Stop the collector; callers still waiting get a RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def score(self, images: list[Any]) -> Sequence[Any]:
        """The results of ``images`` (one each, in order), computed in a batch with other callers'."""
        if self._queue is None:
            raise RuntimeError("ScoreBatcher.start() was not called")
        if not images:
            return []
        future: asyncio.Future[Sequence[Any]] = asyncio.get_running_loop().create_future()
        self.queued_images += len(images)
        await self._queue.put(_Job(images, future))
        return await future  # cancelling the caller cancels the future: the collector skips it

    def _take(self, job: _Job) -> _Job | None:
        self.queued_images -= len(job.images)
        return None if job.future.done() else job

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = self._take(await self._queue.get())
            if first is None:
                continue
            jobs = [first]
            count = len(first.images)
            deadline = time.monotonic() + self.window_s
            while count < self.max_images:
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        job = self._take(self._queue.get_nowait())
                    else:
                        job = self._take(await asyncio.wait_for(self._queue.get(), left))
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if job is not None:
                    jobs.append(job)
                    count += len(job.images)
            images = [im for job in jobs for im in job.images]
            try:
                scores = await loop.run_in_executor(self._executor, self._score, images)
            except Exception as exc:  # every caller of this batch gets the error
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.stats.record(len(images), len(jobs))
            if self._on_batch is not None:
                self._on_batch(len(images), len(jobs))
            start = 0
            for job in jobs:
                part = scores[start : start + len(job.images)]
                start += len(job.images)
                if not job.future.done():  # the client may have gone away
                    job.future.set_result(part)
