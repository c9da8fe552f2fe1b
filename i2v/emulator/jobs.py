"""Generation jobs and the scheduler that moves them along.

A job is ``queued`` until one of ``max_concurrent`` slots is free (first come, first
served), then ``generating`` for about ``generation_seconds`` while its video renders in
a small thread pool, then ``completed`` (once the time is up *and* the file exists) or a
failure status (``error``, or ``failed``, ``cancelled`` or ``expired`` when the job was
doomed to one). One asyncio task drives every job: it sleeps until the next job is due or
something changes, so waiting jobs cost no thread. Every state change happens on the
event loop, so nothing here needs a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from i2v.emulator.images import ImageProblem, load_image
from i2v.emulator.render import aspect_ratio_for, render_video

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "generating", "completed", "error", "failed", "cancelled", "expired"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
#: The statuses a job can fail in.
FailureStatus = Literal["error", "failed", "cancelled", "expired"]
_DELETE_GRACE_S = 60.0


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed (the ``error`` object of the fetch answer) and the status it ends in."""

    name: str
    message: str
    status: FailureStatus = "error"


@dataclass(frozen=True)
class RenderSpec:
    """What the video of a job must look like."""

    image_url: str | None
    seconds: int
    #: ``None``: follow the input image's orientation.
    aspect_ratio: str | None
    seed: int
    #: Whether the video carries a (silent) sound track.
    audio: bool = False
    #: Pixels on the frame's short side; ``None``: the emulator's ``short_side``.
    short_side: int | None = None


@dataclass
class Job:
    """One accepted generation request."""

    id: str
    model: str
    spec: RenderSpec
    credits: float
    #: How long the job stays ``generating`` once started.
    generation_seconds: float
    #: A failure decided when the job was accepted (moderation, injected errors).
    doomed: JobFailure | None = None
    #: How long its video's URL works once completed; ``None``: the scheduler's default.
    url_ttl_seconds: float | None = None
    status: JobStatus = "queued"
    created_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    due_at: float | None = None
    finished_at: float | None = None
    failure: JobFailure | None = None
    file: Path | None = None
    token: str | None = None
    rendering: asyncio.Future[Path] | None = field(default=None, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status not in ("queued", "generating")


def warm_up() -> None:
    """Nothing: submitted once to each render worker so it starts, and imports this module, early."""


def produce_video(spec: RenderSpec, out: Path, *, short_side: int | None, fps: int) -> Path:
    """Load the job's image and render its video; runs in the render pool."""
    side = spec.short_side if spec.short_side is not None else short_side
    if side is None:
        raise ValueError("the job has no frame size: set the emulator's short_side or the job's")
    image = load_image(spec.image_url) if spec.image_url else None
    if spec.aspect_ratio is not None:
        aspect_ratio = spec.aspect_ratio
    else:
        aspect_ratio = aspect_ratio_for(image) if image is not None else "16:9"
    render_video(
        image,
        seconds=spec.seconds,
        aspect_ratio=aspect_ratio,
        short_side=side,
        fps=fps,
        seed=spec.seed,
        out=out,
        audio=spec.audio,
    )
    return out


class Scheduler:
    """Owns every job; call :meth:`run` as a background task while the app serves."""

    def __init__(
        self,
        *,
        max_concurrent: int,
        work_dir: Path,
        pool: Executor,
        short_side: int | None,
        fps: int,
        url_ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.url_ttl_seconds = url_ttl_seconds
        self.work_dir = work_dir
        self.short_side = short_side
        self.fps = fps
        self.clock = clock
        self.max_generating_seen = 0
        self._pool = pool
        self._jobs: dict[str, Job] = {}
        self._files: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._generating: list[Job] = []
        # Completed jobs by the moment their URL expires (models' URLs last differently long);
        # the counter breaks ties without comparing jobs.
        self._expiring: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._counts: Counter[JobStatus] = Counter()
        self._wake = asyncio.Event()
        self._stopped = False

    def submit(self, job: Job) -> None:
        """Accept ``job``: it waits its turn in the queue."""
        self._jobs[job.id] = job
        self._queue.append(job)
        self._counts["queued"] += 1
        self.advance()
        self._wake.set()

    def find(self, generation_id: str) -> Job | None:
        return self._jobs.get(generation_id)

    def by_token(self, token: str) -> Job | None:
        return self._files.get(token)

    def counts(self) -> dict[str, int]:
        """Jobs by their current status."""
        return {status: self._counts[status] for status in JOB_STATUSES}

    @property
    def total(self) -> int:
        return len(self._jobs)

    def pending(self) -> int:
        """Jobs queued or generating."""
        return len(self._queue) + len(self._generating)

    def seconds_until_free(self) -> float:
        """A fair guess at when a new job could be accepted: when the first running one ends."""
        now = self.clock()
        dues = [job.due_at for job in self._generating if job.due_at is not None]
        return max(0.0, min(dues) - now) if dues else 0.0

    def expired(self, job: Job) -> bool:
        """Whether the job's download URL no longer works."""
        return job.finished_at is not None and self.clock() > job.finished_at + self.ttl(job)

    def ttl(self, job: Job) -> float:
        """Seconds ``job``'s download URL works once it is completed."""
        return self.url_ttl_seconds if job.url_ttl_seconds is None else job.url_ttl_seconds

    def advance(self) -> None:
        """Finish every job that is due, then start queued ones into the free slots."""
        now = self.clock()
        self._delete_expired(now)
        for job in list(self._generating):
            if job.due_at is not None and now >= job.due_at and self._output_ready(job):
                self._finish(job, now)
        while self._queue and len(self._generating) < self.max_concurrent:
            self._start(self._queue.popleft(), now)

    async def run(self) -> None:
        """Advance jobs as they fall due, until :meth:`stop`."""
        while not self._stopped:
            self._wake.clear()
            self.advance()
            now = self.clock()
            dues = [job.due_at - now for job in self._generating if job.due_at and job.due_at > now]
            # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that races with
            # the event, leaving the loop (and the server's shutdown) waiting forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(dues) if dues else None):
                    await self._wake.wait()

    def stop(self) -> None:
        """Make :meth:`run` return at its next turn."""
        self._stopped = True
        self._wake.set()

    def _output_ready(self, job: Job) -> bool:
        return job.rendering is None or job.rendering.done()

    def _start(self, job: Job, now: float) -> None:
        job.status = "generating"
        job.started_at = now
        job.due_at = now + job.generation_seconds
        self._counts["queued"] -= 1
        self._counts["generating"] += 1
        self._generating.append(job)
        self.max_generating_seen = max(self.max_generating_seen, len(self._generating))
        if job.doomed is None:
            work = functools.partial(
                produce_video,
                job.spec,
                self.work_dir / f"{job.id}.mp4",
                short_side=self.short_side,
                fps=self.fps,
            )
            job.rendering = asyncio.get_running_loop().run_in_executor(self._pool, work)
            job.rendering.add_done_callback(self._on_rendered)

    def _on_rendered(self, _: Any) -> None:
        self._wake.set()

    def _finish(self, job: Job, now: float) -> None:
        self._generating.remove(job)
        self._counts["generating"] -= 1
        job.finished_at = now
        job.failure = job.doomed or self._render_failure(job)
        if job.failure is None and job.rendering is not None:
            job.file = job.rendering.result()
            job.token = secrets.token_urlsafe(18)
            self._files[job.token] = job
            heapq.heappush(self._expiring, (now + self.ttl(job), next(self._order), job))
            job.status = "completed"
        else:
            job.status = job.failure.status if job.failure is not None else "error"
        job.rendering = None
        self._counts[job.status] += 1

    def _delete_expired(self, now: float) -> None:
        # Long dry runs would otherwise fill the disk. The grace period keeps a file that is
        # still being sent from vanishing under its download.
        limit = now - _DELETE_GRACE_S
        while self._expiring and self._expiring[0][0] < limit:
            job = heapq.heappop(self._expiring)[2]
            if job.file is not None:
                job.file.unlink(missing_ok=True)
                job.file = None

    def _render_failure(self, job: Job) -> JobFailure | None:
        if job.rendering is None:
            return None
        if job.rendering.cancelled():
            return JobFailure("InternalServerError", "The generation was interrupted.")
        exc = job.rendering.exception()
        if exc is None:
            return None
        if isinstance(exc, ImageProblem):
            return JobFailure(exc.name, exc.message)
        log.error("rendering job %s failed", job.id, exc_info=exc)
        return JobFailure("InternalServerError", "The video could not be generated.")
