"""The engine: every row of a run as a coroutine on one event loop.

::

    row ─▶ same work already running in this run? ── wait for it, share its outcome
        ─▶ a record says it is done (or done earlier in this run)? ── reuse it
        ─▶ the journal names a live job? ── re-attach (no second payment)
        ─▶ submit (admission control) ─▶ wait (paced polls) ─▶ store (bounded transfers)
        ─▶ record ─▶ outcome

One :class:`Engine` serves a whole run in a process: every batch of every shard shares
its admission limiter, poll pacer, clients and thread pool, so a slot freed by any row
is taken by the next waiting row, whichever batch it is in. Nothing per row outlives
the row: outcomes go to the records as they are known and back to the caller.

A batch run on a Prefect retry redoes only its unfinished rows: every other row finds
its own record from this run, and an unfinished row (a transient failure after its job
was made) finds its job in the journal and re-attaches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

import httpx

from i2v import outcomes
from i2v.api import prices
from i2v.api.client import VideoApi
from i2v.engine import jobs
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.download import Stored, store_video
from i2v.engine.jobs import RUN_FATAL, Finished
from i2v.engine.journal import Entry, Journal, Submission
from i2v.engine.kept_inputs import KeptInputs
from i2v.engine.offload import Offload, Patient
from i2v.engine.pacing import PollPacer
from i2v.engine.progress import Progress
from i2v.engine.records import Records
from i2v.engine.retry import Backoff, call_with_retries, is_transient
from i2v.engine.row_order import RowOrder
from i2v.engine.spec import EngineOptions, RowsUnfinished
from i2v.engine.stop_rules import RunPolicy
from i2v.errors import DownloadError, I2VError, Stopped, StorageError, SubmitUnknown
from i2v.inputs.row import Presigner, Row
from i2v.media.mismatch import describe
from i2v.outcomes import Origin, RowOutcome
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

#: Threads writing and decoding videos, apart from the journal's, so a wave of downloads
#: never delays the journal write that stands between a freed slot and the next create.
TRANSFER_THREADS = 4
#: Threads of the journal alone: its writes never queue behind rows looking themselves up
#: (a new shard's rows all do at once) or behind records being written.
JOURNAL_THREADS = 2
#: Rows getting ready for a slot or waiting for one, per slot the run may hold.
READY_PER_SLOT = 2
#: How long a destination may be unreachable before a row fails for it (about 30 s in all).
STORAGE_BACKOFF = Backoff(attempts=6, initial_s=1.0, max_s=16.0)
#: Download URLs answering these are gone for good; the next run starts a fresh job.
_EXPIRED = frozenset({403, 404, 410})


@dataclass
class _Result:
    outcome: RowOutcome
    #: Failed on something transient after which a retry can pick the row up again.
    unfinished: bool = False
    #: Served from this run's own record of an earlier attempt (already counted).
    reused: bool = False


@dataclass
class Engine:
    """What every row of a run shares; see the module docstring."""

    api: VideoApi
    downloads: httpx.AsyncClient
    dest: Destination
    limiter: AdmissionLimiter
    pacer: PollPacer
    offload: Offload
    options: EngineOptions
    progress: Progress = field(default_factory=Progress)
    #: Presigned URLs for ``s3://`` images (None: such rows fail when sent).
    presign: Presigner | None = None

    def __post_init__(self) -> None:
        self._patient = Patient(self.offload, self._sleep, STORAGE_BACKOFF)
        self._journal_threads = Offload(JOURNAL_THREADS)
        self.journal = Journal(self.dest, Patient(self._journal_threads, self._sleep, STORAGE_BACKOFF))
        self.records = Records(self.dest, self._patient)
        self._transfers = Offload(TRANSFER_THREADS)
        self._transfer_slots = asyncio.Semaphore(self.options.max_transfers)
        # Rows getting ready for a slot (looking up what the destination knows, building
        # their request) or waiting for one, at most this many: enough to refill every slot
        # twice over, so the provider never waits for a row. Without a bound, a new shard's
        # rows would all read the destination and build their bodies at once, holding every
        # body and starving the event loop while the slots they wait for free one by one.
        self._getting_ready = asyncio.Semaphore(READY_PER_SLOT * self.limiter.max_in_flight)
        self._claims: dict[str, asyncio.Future[RowOutcome]] = {}
        self.order = RowOrder()
        self.policy = RunPolicy(self.options.max_failure_ratio, self.options.max_credits)
        #: Why the run stopped sending work, if it did.
        self.stopped: Stopped | None = None
        # Set when the run must also stop waiting on jobs (a signal, not a limit).
        self._halt = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._inputs = KeptInputs(self.dest)

    async def run_batch(
        self, rows: Sequence[Row], *, flow_run_id: str | None = None, final: bool = True
    ) -> list[RowOutcome]:
        """Every row's outcome, in order.

        Unless ``final``, rows that failed on something transient are not recorded and
        :class:`RowsUnfinished` is raised once every row has run, so the caller can try
        the batch again; only those rows will be redone.
        """
        origin = Origin(self.options.run, flow_run_id)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._process(row, origin, final=final)) for row in rows]
        finally:
            self.withdraw(rows)
        results = [task.result() for task in tasks]
        unfinished = [result.outcome for result in results if result.unfinished]
        if unfinished:
            raise RowsUnfinished(unfinished)
        return [result.outcome for result in results]

    def announce(self, rows: Sequence[Row]) -> None:
        """Rows about to be worked on (see :class:`~i2v.engine.row_order.RowOrder`)."""
        self.order.announce(rows)

    def order_shards(self) -> None:
        """Every shard of the run works in this process: they announce their rows in order."""
        self.order.in_shard_order()

    async def shard_turn(self, index: int) -> None:
        await self.order.shard_turn(index)

    def shard_announced(self, index: int) -> None:
        self.order.shard_announced(index)

    def withdraw(self, rows: Sequence[Row]) -> None:
        """Rows that will not claim their key (their batch or shard ended): nobody waits for them."""
        self.order.withdraw(rows)

    async def salvage(
        self, rows: Sequence[Row], error: BaseException, *, flow_run_id: str | None = None
    ) -> list[RowOutcome]:
        """Outcomes for the rows of a batch that broke off: what each row recorded, or ``error``."""
        origin = Origin(self.options.run, flow_run_id)
        results = []
        for row in rows:
            record = await self.records.load(row.key)
            if record is not None and record.run == origin.run and record.row_index == row.index:
                results.append(record)
            else:
                outcome = outcomes.failed(row, error, origin)
                self.progress.add(outcome)
                results.append(outcome)
        return results

    async def aclose(self) -> None:
        """Close the clients and thread pools (the run is over in this process)."""
        await self.api.aclose()
        await self.downloads.aclose()
        self.offload.close()
        self._journal_threads.close()
        self._transfers.close()

    def stop(self, reason: I2VError) -> None:
        """Send nothing more; rows already at the provider finish."""
        stop = self.limiter.stop(reason)
        if self.stopped is None:
            self.stopped = stop
            log.error("stopping the run: %s", reason)

    def halt(self, reason: str) -> None:
        """Stop now (a signal): send nothing more and stop waiting on running jobs.

        Every started job stays in the journal, so a rerun re-attaches to it; rows cut
        short are skipped with the reason. Safe to call from another thread.
        """

        def now() -> None:
            self.stop(Stopped(reason))
            self._halt.set()

        self._loop.call_soon_threadsafe(now)

    async def _sleep(self, seconds: float) -> None:
        """A wait between polls or after a 429 that a halt cuts short."""
        if self._halt.is_set():
            raise self.stopped or Stopped("the run was stopped")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._halt.wait()
        if self._halt.is_set():
            raise self.stopped or Stopped("the run was stopped")

    async def _process(self, row: Row, origin: Origin, *, final: bool) -> _Result:
        await self.order.take_turn(row)
        first = self._claims.get(row.key)
        if first is not None:
            try:
                shared = await asyncio.shield(first)
            except I2VError as exc:
                result = _Result(outcomes.failed(row, exc, origin))
            else:
                result = _Result(outcomes.duplicate(row, shared, origin))
            self._count(result)
            return result
        claim: asyncio.Future[RowOutcome] = asyncio.get_running_loop().create_future()
        self._claims[row.key] = claim
        try:
            result = await self._work(row, origin, final=final)
        except BaseException:
            claim.set_exception(I2VError("the row this one repeats was interrupted"))
            # Nobody may be waiting on the claim: do not warn about its exception.
            claim.exception()
            raise
        else:
            claim.set_result(result.outcome)
        finally:
            del self._claims[row.key]
        self._count(result)
        return result

    def _count(self, result: _Result) -> None:
        if not result.unfinished and not result.reused:
            self.progress.add(result.outcome)

    async def _work(self, row: Row, origin: Origin, *, final: bool) -> _Result:
        known: dict[str, Any] = {}
        estimate = 0.0
        try:
            async with self._getting_ready:
                record, entry, body = await self._patient(self._look_up, row)
                if record is not None:
                    earlier = await self._from_record(row, record, origin)
                    if earlier is not None:
                        return earlier
                submission = await self._reattach(row, entry)
                if submission is None:
                    if body is None:
                        body = await self.offload(row.request_body, self.presign)
                    estimate = prices.estimate(row.model, row.params).credits
                    self.policy.reserve(estimate)
                    try:
                        submission = await jobs.submit(
                            self.api,
                            row,
                            self.journal,
                            self.limiter,
                            run=self.options.run,
                            body=body,
                            sleep=self._sleep,
                        )
                    except BaseException:
                        self.policy.settle(estimate, 0.0)
                        estimate = 0.0
                        raise
            known.update(
                generation_id=submission.generation_id,
                submit_attempts=submission.attempts,
                submitted_at=submission.submitted_at,
            )
            try:
                finished = await jobs.wait_for_video(
                    self.api,
                    submission,
                    self.pacer,
                    job=jobs.job_class(row),
                    deadline=submission.submitted_at + self.options.job_timeout_s,
                    sleep=self._sleep,
                )
            finally:
                self.limiter.release(accepted=True)
            if estimate:
                self.policy.settle(estimate, finished.credits_used)
                estimate = 0.0
            known.update(polls=finished.polls, completed_at=finished.completed_at, credits_used=finished.credits_used)
            async with self._transfer_slots:
                stored, _ = await call_with_retries(
                    lambda: store_video(
                        self.downloads,
                        finished.video_url,
                        self.dest,
                        name=row.name,
                        offload=self._transfers,
                        rules=self.options.downloads,
                    ),
                    retry_if=is_transient,
                    backoff=STORAGE_BACKOFF,
                    sleep=self._sleep,
                )
            outcome = _completed(row, finished, stored, origin)
        except Stopped as exc:
            if self.stopped is None:
                # A limit was reached on this row: nothing more is sent, for any row.
                self.stop(exc)
            return _Result(outcomes.stopped(row, exc, origin, **known))
        except Exception as exc:  # noqa: BLE001 - every failure becomes the row's outcome, named
            if isinstance(exc, RUN_FATAL):
                self.stop(exc)
            if isinstance(exc, DownloadError) and exc.status in _EXPIRED:
                # The URL will not come back; the next run starts a fresh generation.
                await self._forget(row)
            outcome = outcomes.failed(row, exc, origin, **known)
            if is_transient(exc) and not final:
                return _Result(outcome, unfinished=True)
        finally:
            if estimate:
                # The job ended without a video: assume it cost what was estimated.
                self.policy.settle(estimate, None)
        await self._record(outcome)
        verdict = self.policy.judge(failed=outcome.status == "failed")
        if verdict is not None and self.stopped is None:
            self.stop(verdict)
        return _Result(outcome)

    async def _from_record(self, row: Row, record: RowOutcome, origin: Origin) -> _Result | None:
        """What an existing record means for this row, or None to do the work."""
        if record.run is not None and record.run == origin.run:
            if record.row_index == row.index:
                return _Result(record, reused=True)
            return _Result(outcomes.duplicate(row, record, origin))
        if record.status == "completed":
            if await self.records.video_intact(record):
                return _Result(outcomes.already_done(row, record, origin))
            return None
        if record.status != "failed" or record.retryable or self.options.retry == "all":
            return None
        if record.error_kind == SubmitUnknown.kind and self.options.resubmit_unknown:
            return None
        return _Result(outcomes.not_retried(row, record, origin))

    def _look_up(self, row: Row) -> tuple[RowOutcome | None, Entry | None, dict[str, Any] | None]:
        """What the destination knows of the row, and (for new work) its request body.

        One call in one thread: a row's first steps cost one hop off the event loop. A
        local or inline image is copied into the destination here, once per image, so the
        manifest can name it and a rerun needs nothing but the destination.
        """
        record = self.records.read(row.key)
        entry = self.journal.read(row.key)
        self._inputs.keep(row)
        body = row.request_body(self.presign) if record is None and entry is None else None
        return record, entry, body

    async def _reattach(self, row: Row, entry: Entry | None) -> Submission | None:
        """The live job a journal entry names for this row, counted as in flight."""
        if entry is None:
            return None
        if entry.state == "sending" and self.options.resubmit_unknown:
            log.warning("row %s: sending again a create whose outcome was unknown (run %s)", row.index, entry.run)
            await self.journal.forget(row.key)
            return None
        if entry.state == "sending":
            raise SubmitUnknown(
                f"a create for this work was sent (run {entry.run}) and may have started a job; "
                "not sent again, to avoid paying twice"
            )
        submission = entry.submission()
        if submission is not None and await jobs.still_live(self.api, submission):
            log.info("row %s: re-attached to generation %s", row.index, submission.generation_id)
            self.limiter.adopt()
            return replace(submission, attempts=0, reattached=True)
        await self.journal.forget(row.key)
        return None

    async def _record(self, outcome: RowOutcome) -> None:
        if outcome.row_key is None:
            return
        try:
            await self.records.save(outcome)
        except StorageError as exc:
            # The manifest still gets the row; only a rerun's shortcut is lost.
            log.warning("row %s: outcome not recorded (%s)", outcome.row_index, exc)

    async def _forget(self, row: Row) -> None:
        try:
            await self.journal.forget(row.key)
        except StorageError as exc:
            log.warning("row %s: could not drop the expired job from the journal (%s)", row.index, exc)


def _completed(row: Row, finished: Finished, stored: Stored, origin: Origin) -> RowOutcome:
    """A row whose video is stored and verified."""
    submission = finished.submission
    return RowOutcome(
        **outcomes.base(row, origin),
        status="completed",
        generation_id=submission.generation_id,
        submit_attempts=submission.attempts,
        polls=finished.polls,
        submitted_at=submission.submitted_at,
        completed_at=finished.completed_at,
        generation_seconds=round(finished.completed_at - submission.submitted_at, 3),
        video_uri=stored.video_uri,
        video_bytes=stored.video_bytes,
        video_sha256=stored.video_sha256,
        duration_s=stored.info.duration_s,
        width=stored.info.width,
        height=stored.info.height,
        fps=stored.info.fps,
        codec=stored.info.codec,
        mismatch=describe(
            row.params, duration_s=stored.info.duration_s, width=stored.info.width, height=stored.info.height
        ),
        thumbnail_uri=stored.thumbnail_uri,
        credits_used=finished.credits_used,
    )
