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
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from i2v import jobs, outcomes
from i2v.api import VideoApi
from i2v.blocking import Offload
from i2v.errors import DownloadError, I2VError, Stopped, StorageError, SubmitUnknown
from i2v.jobs import RUN_FATAL
from i2v.journal import Journal, Submission
from i2v.limiter import AdmissionLimiter
from i2v.outcomes import Origin, RowOutcome
from i2v.pacing import PollPacer
from i2v.progress import Progress
from i2v.records import Records
from i2v.retry import is_transient
from i2v.rows import Row
from i2v.storage import Destination
from i2v.transfer import store_video

log = logging.getLogger(__name__)

#: Threads writing and decoding videos, apart from the journal's, so a wave of downloads
#: never delays the journal write that stands between a freed slot and the next create.
TRANSFER_THREADS = 4
#: Download URLs answering these are gone for good; the next run starts a fresh job.
_EXPIRED = frozenset({403, 404, 410})


class RowsUnfinished(I2VError):
    """Some rows of a batch failed on something transient; trying the batch again may finish them."""

    kind = "unfinished"
    retryable = True

    def __init__(self, outcomes: Sequence[RowOutcome]) -> None:
        first = outcomes[0]
        super().__init__(
            f"{len(outcomes)} row(s) unfinished, first row {first.row_index}: {first.error_kind}: {first.error_message}"
        )
        self.outcomes = list(outcomes)


@dataclass(frozen=True)
class EngineOptions:
    """How one run treats its rows."""

    run: str
    job_timeout_s: float = 900.0
    #: Videos being downloaded at once (each holds at most a part buffer and a spool file).
    max_transfers: int = 8


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

    def __post_init__(self) -> None:
        self.journal = Journal(self.dest, self.offload)
        self.records = Records(self.dest, self.offload)
        self._transfers = Offload(TRANSFER_THREADS)
        self._transfer_slots = asyncio.Semaphore(self.options.max_transfers)
        self._claims: dict[str, asyncio.Future[RowOutcome]] = {}
        self.fatal: I2VError | None = None

    async def run_batch(
        self, rows: Sequence[Row], *, flow_run_id: str | None = None, final: bool = True
    ) -> list[RowOutcome]:
        """Every row's outcome, in order.

        Unless ``final``, rows that failed on something transient are not recorded and
        :class:`RowsUnfinished` is raised once every row has run, so the caller can try
        the batch again; only those rows will be redone.
        """
        origin = Origin(self.options.run, flow_run_id)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._process(row, origin, final=final)) for row in rows]
        results = [task.result() for task in tasks]
        unfinished = [result.outcome for result in results if result.unfinished]
        if unfinished:
            raise RowsUnfinished(unfinished)
        return [result.outcome for result in results]

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
        await self.downloads.aclose()
        self.offload.close()
        self._transfers.close()

    def stop(self, reason: I2VError) -> None:
        """Send nothing more; rows already at the provider finish."""
        if self.fatal is None:
            self.fatal = reason
            log.error("stopping the run: %s", reason)
        self.limiter.stop(reason)

    async def _process(self, row: Row, origin: Origin, *, final: bool) -> _Result:
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
        try:
            record = await self.records.load(row.key)
            if record is not None:
                earlier = await self._from_record(row, record, origin)
                if earlier is not None:
                    return earlier
            submission = await self._reattach(row)
            if submission is None:
                body = await self.offload(row.request_body)
                submission = await jobs.submit(
                    self.api, row, self.journal, self.limiter, run=self.options.run, body=body
                )
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
                )
            finally:
                self.limiter.release(accepted=True)
            known.update(polls=finished.polls, completed_at=finished.completed_at, credits_used=finished.credits_used)
            async with self._transfer_slots:
                stored = await store_video(
                    self.downloads, finished.video_url, self.dest, name=row.id, offload=self._transfers
                )
            outcome = outcomes.completed(row, finished, stored, origin)
        except Stopped as exc:
            return _Result(outcomes.not_submitted(row, exc, origin))
        except Exception as exc:  # noqa: BLE001 - every failure becomes the row's outcome, named
            if isinstance(exc, RUN_FATAL):
                self.stop(exc)
            if isinstance(exc, DownloadError) and exc.status in _EXPIRED:
                # The URL will not come back; the next run starts a fresh generation.
                await self._forget(row)
            outcome = outcomes.failed(row, exc, origin, **known)
            if is_transient(exc) and not final:
                return _Result(outcome, unfinished=True)
        await self._record(outcome)
        return _Result(outcome)

    async def _from_record(self, row: Row, record: RowOutcome, origin: Origin) -> _Result | None:
        """What an existing record means for this row, or None to do the work."""
        if record.run is not None and record.run == origin.run:
            if record.row_index == row.index:
                return _Result(record, reused=True)
            return _Result(outcomes.duplicate(row, record, origin))
        if record.status == "completed" and await self.records.video_intact(record):
            return _Result(outcomes.already_done(row, record, origin))
        return None

    async def _reattach(self, row: Row) -> Submission | None:
        """The live job a journal entry names for this row, counted as in flight."""
        entry = await self.journal.load(row.key)
        if entry is None:
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
