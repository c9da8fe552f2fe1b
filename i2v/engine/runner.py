"""The engine: every row of a run as a coroutine on one event loop.

::

    row ─▶ same work already running in this process? ── wait for it, share its outcome
        ─▶ what the destination knows (i2v.engine.resume): done? claimed by another run?
           claim it; a journaled job? re-attach; a lost create? settle it from the logs
        ─▶ submit (admission control) ─▶ wait (paced polls) ─▶ store (bounded transfers)
        ─▶ record ─▶ give the claim back ─▶ outcome

One :class:`Engine` serves a whole run in a process: every batch of every shard shares
its admission limiter, poll pacer, clients, thread pools and video collector
(:mod:`~i2v.engine.collect`, which stores each finished video), so a slot freed by any
row is taken by the next waiting row, whichever batch it is in. Nothing per row outlives
the row: outcomes go to the records as they are known and back to the caller.

A batch run on a Prefect retry redoes only its unfinished rows: every other row finds
its own record from this run, and an unfinished row (a transient failure after its job
was made) finds its job in the journal and re-attaches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from i2v import outcomes
from i2v.api import prices
from i2v.api.client import VideoApi
from i2v.api.metrics import Durations
from i2v.engine import jobs
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.claims import HEARTBEAT_S, LEASE_S, RowClaims
from i2v.engine.collect import VideoCollector, completed
from i2v.engine.jobs import RUN_FATAL
from i2v.engine.journal import Journal, Submission
from i2v.engine.kept_inputs import KeptInputs
from i2v.engine.offload import Offload, Patient
from i2v.engine.pacing import PollPacer
from i2v.engine.progress import Progress
from i2v.engine.records import Records
from i2v.engine.resume import Ready, Resume, RowResult
from i2v.engine.retry import Backoff, is_transient
from i2v.engine.row_order import RowOrder
from i2v.engine.spec import EngineOptions, RowsUnfinished
from i2v.engine.stop_rules import RunPolicy
from i2v.engine.unknown_creates import UnknownCreates
from i2v.errors import I2VError, Stopped, StorageError, SubmitUnknown
from i2v.inputs.row import Presigner, Row
from i2v.outcomes import Origin, RowOutcome
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

#: Threads of the journal alone: its writes never queue behind rows looking themselves up
#: (a new shard's rows all do at once) or behind records being written.
JOURNAL_THREADS = 2
#: Rows getting ready for a slot or waiting for one, per slot the run may hold.
READY_PER_SLOT = 2
#: How long a destination may be unreachable before a row fails for it (about 30 s in all).
STORAGE_BACKOFF = Backoff(attempts=6, initial_s=1.0, max_s=16.0)
#: Creates in a row whose answer may be lost before a row stops trying.
UNKNOWN_ROUNDS = 3
#: A re-attached job is waited for at most this many job timeouts since its create.
MAX_JOB_AGE_FACTOR = 4


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
        self.claims = RowClaims(self.dest, run=self.options.run)
        # Rows getting ready for a slot (looking up what the destination knows, building
        # their request) or waiting for one, at most this many: enough to refill every slot
        # twice over, so the provider never waits for a row. Without a bound, a new shard's
        # rows would all read the destination and build their bodies at once, holding every
        # body and starving the event loop while the slots they wait for free one by one.
        self._getting_ready = asyncio.Semaphore(READY_PER_SLOT * self.limiter.max_in_flight)
        # Rows of this process at work, by key: a row repeating one waits for its outcome.
        self._working: dict[str, asyncio.Future[RowOutcome]] = {}
        self.order = RowOrder()
        self.policy = RunPolicy(self.options.max_failure_ratio, self.options.max_credits)
        #: Why the run stopped sending work, if it did.
        self.stopped: Stopped | None = None
        # Set when the run must also stop waiting on jobs (a signal, not a limit).
        self._halt = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.resume = Resume(
            options=self.options,
            api=self.api,
            journal=self.journal,
            records=self.records,
            claims=self.claims,
            inputs=KeptInputs(self.dest),
            limiter=self.limiter,
            patient=self._patient,
            unknown=UnknownCreates(self.api, grace_s=self.options.unknown_grace_s, sleep=self._sleep),
            presign=self.presign,
        )
        self.collector = VideoCollector(
            api=self.api,
            downloads=self.downloads,
            dest=self.dest,
            rules=self.options.downloads,
            max_transfers=self.options.max_transfers,
            patient=self._patient,
            resume=self.resume,
            sleep=self._sleep,
            backoff=STORAGE_BACKOFF,
        )
        self._heartbeat = self._loop.create_task(self._beat_forever())
        # What the provider says each model takes, asked once per model and shared by its rows.
        self._typical: dict[str, asyncio.Task[Durations | None]] = {}

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
            try:
                record = await self.records.load(row.key)
            except StorageError as exc:
                log.warning("row %s: its record cannot be read (%s); reported as broken off", row.index, exc)
                record = None
            if isinstance(record, RowOutcome) and record.run == origin.run and record.row_index == row.index:
                results.append(record)
            else:
                outcome = outcomes.failed(row, error, origin)
                self.progress.add(outcome)
                results.append(outcome)
        return results

    async def aclose(self) -> None:
        """Give back this process's claims; close the clients and thread pools (the run is over here)."""
        self._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat
        for asked in self._typical.values():
            asked.cancel()
        await self.offload(self.claims.retire)
        await self.api.aclose()
        await self.downloads.aclose()
        self.offload.close()
        self._journal_threads.close()
        self.collector.close()

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

    async def _process(self, row: Row, origin: Origin, *, final: bool) -> RowResult:
        await self.order.take_turn(row)
        first = self._working.get(row.key)
        if first is not None:
            try:
                shared = await asyncio.shield(first)
            except I2VError as exc:
                result = RowResult(outcomes.failed(row, exc, origin))
            else:
                result = RowResult(outcomes.duplicate(row, shared, origin))
            self._count(result)
            return result
        working: asyncio.Future[RowOutcome] = asyncio.get_running_loop().create_future()
        self._working[row.key] = working
        try:
            result = await self._work(row, origin, final=final)
        except BaseException:
            working.set_exception(I2VError("the row this one repeats was interrupted"))
            # Nobody may be waiting on it: do not warn about its exception.
            working.exception()
            raise
        else:
            working.set_result(result.outcome)
        finally:
            del self._working[row.key]
        self._count(result)
        return result

    def _typical_of(self, model: str) -> asyncio.Task[Durations | None]:
        asked = self._typical.get(model)
        if asked is None:
            asked = self._typical[model] = self._loop.create_task(jobs.typical_durations(self.api, model))
        return asked

    def _count(self, result: RowResult) -> None:
        if not result.unfinished and not result.reused:
            self.progress.add(result.outcome)

    async def _work(self, row: Row, origin: Origin, *, final: bool) -> RowResult:
        known: dict[str, Any] = {}
        estimate = 0.0
        claimed = False
        try:
            # Asked while the row is sent: the answer is there by the first poll.
            typical = self._typical_of(row.model)
            started = await self._claim_and_start(row, origin)
            if isinstance(started, RowResult):
                return started
            claimed = True
            submission, estimate = started
            durations = await asyncio.shield(typical)
            if durations is not None:
                self.pacer.expect(jobs.job_class(row), durations.quantiles())
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
                    deadline=self._deadline(submission),
                    sleep=self._sleep,
                )
            finally:
                self.limiter.release(accepted=True)
            if estimate:
                self.policy.settle(estimate, finished.credits_used)
                estimate = 0.0
            known.update(polls=finished.polls, completed_at=finished.completed_at, credits_used=finished.credits_used)
            stored = await self.collector.store(row, finished)
            outcome = completed(row, finished, stored, origin)
        except Stopped as exc:
            if self.stopped is None:
                # A limit was reached on this row: nothing more is sent, for any row.
                self.stop(exc)
            if claimed:
                # Its job, if any, stays journaled: the next run (or another one now) re-attaches.
                await self.resume.release(row)
            return RowResult(outcomes.stopped(row, exc, origin, **known))
        except Exception as exc:  # noqa: BLE001 - every failure becomes the row's outcome, named
            if isinstance(exc, RUN_FATAL) or (isinstance(exc, StorageError) and exc.unwritable):
                # A bad key, an empty account, or a destination that takes no more writes
                # (full, read-only): every later row would fail the same way, after paying.
                self.stop(exc)
            outcome = outcomes.failed(row, exc, origin, **known)
            if is_transient(exc) and not final:
                return RowResult(outcome, unfinished=True)
        finally:
            if estimate:
                # The job ended without a video: assume it cost what was estimated.
                self.policy.settle(estimate, None)
        await self.resume.record(outcome)
        if claimed:
            await self.resume.release(row)
        verdict = self.policy.judge(failed=outcome.status == "failed")
        if verdict is not None and self.stopped is None:
            self.stop(verdict)
        return RowResult(outcome)

    async def _claim_and_start(self, row: Row, origin: Origin) -> RowResult | tuple[Submission, float]:
        """The row's earlier outcome; or, its claim taken, its job (re-attached or created) and credits reserved.

        Waits while another live run holds the row's claim: for its outcome, or for the
        claim to come free (its holder ended without one).
        """
        waited = 0.0
        while True:
            async with self._getting_ready:
                prior = await self.resume.prior(row, origin)
                if isinstance(prior, RowResult):
                    return prior
                if isinstance(prior, Ready):
                    return await self._start(row, prior)
            if waited >= self.options.job_timeout_s + LEASE_S:
                return RowResult(outcomes.claimed_elsewhere(row, prior.run, origin))
            log.debug("row %s: claimed by run %s; waiting for its outcome", row.index, prior.run)
            await self._sleep(prior.recheck_s)
            waited += prior.recheck_s

    async def _start(self, row: Row, ready: Ready) -> tuple[Submission, float]:
        """The row's job: re-attached, or created now; and the credits reserved for a new one."""
        entry, body = ready.entry, ready.body
        for _ in range(UNKNOWN_ROUNDS):
            submission = await self.resume.reattach(row, entry)
            if submission is not None:
                return submission, 0.0
            if not self.claims.fresh():
                # Others judge this run alive by its heartbeat: no create without a fresh one.
                await self.offload(self.claims.beat)
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
                    sends=entry.sends if entry is not None else 0,
                    sleep=self._sleep,
                )
            except SubmitUnknown:
                # The answer was lost: the provider's logs say whether a job was made.
                self.policy.settle(estimate, None)
                entry = await self.journal.load(row.key)
                continue
            except BaseException:
                self.policy.settle(estimate, 0.0)
                raise
            return submission, estimate
        raise SubmitUnknown(f"{UNKNOWN_ROUNDS} creates in a row lost their answer; not sent again")

    def _deadline(self, submission: Submission) -> float:
        """When the job is given up: ``job_timeout_s`` from its create, or from now for a re-attached one.

        A job picked up again by a later run gets a fresh wait, but no job is waited for
        longer than :data:`MAX_JOB_AGE_FACTOR` timeouts in all.
        """
        timeout = self.options.job_timeout_s
        if not submission.reattached:
            return submission.submitted_at + timeout
        return min(time.time() + timeout, submission.submitted_at + MAX_JOB_AGE_FACTOR * timeout)

    async def _beat_forever(self) -> None:
        """This process's heartbeat as an owner of claims, for as long as the engine lives."""
        while True:
            try:
                await self.offload(self.claims.beat)
            except StorageError as exc:
                log.warning("claims heartbeat not written (%s); no create is sent until it is", exc)
            await asyncio.sleep(HEARTBEAT_S)
