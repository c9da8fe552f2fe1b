"""Submitting a row and waiting for its video: the two steps that cost money and time.

:func:`submit` sends the create under admission control (:mod:`i2v.engine.admission`) with the
intent journaled first; :func:`wait_for_video` polls on the schedule of
:mod:`i2v.engine.pacing`. Both are coroutines: thousands of jobs wait on one event loop.
Collaborators (API client, journal, limiter, pacer, clock) are passed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from i2v.api.client import Generation, VideoApi
from i2v.api.metrics import Durations
from i2v.api.models import get_model
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.journal import Journal, Submission
from i2v.engine.pacing import PollPacer
from i2v.engine.retry import Backoff, call_with_retries, is_safe_to_resubmit, is_transient
from i2v.errors import (
    AuthError,
    BadResponse,
    GenerationFailed,
    GenerationTimeout,
    OutOfCredits,
    RateLimited,
    RequestRejected,
    StorageError,
    SubmitUnknown,
)
from i2v.inputs.row import Row

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Resends of a create that certainly made no job (connection refused, 503); 429s are
#: not counted: they only ever mean "wait".
SUBMIT_BACKOFF = Backoff(attempts=6, initial_s=2.0, max_s=60.0)
#: Waiting after a 429 that named no Retry-After.
RATE_LIMIT_BACKOFF = Backoff(attempts=1_000_000, initial_s=1.0, max_s=30.0)
#: Run-fatal answers: the key or the account is wrong for every row alike.
RUN_FATAL = (AuthError, OutOfCredits)


@dataclass(frozen=True)
class Finished:
    """A completed generation whose video is waiting at ``video_url``."""

    submission: Submission
    video_url: str
    completed_at: float
    polls: int
    credits_used: float | None
    #: What the provider reported it cost in USD (its cost headers), if it said.
    usd_spent: float | None = None


def job_class(row: Row) -> Hashable:
    """Jobs expected to take about as long as each other: same model, length and size."""
    return (row.model, row.params.get("duration"), str(row.params.get("resolution", "")).lower())


async def typical_durations(api: VideoApi, model: str) -> Durations | None:
    """What the provider says ``model``'s jobs take now (``GET /models/metrics``); None if it says nothing.

    Only a head start for the poll schedule: any failure (unreachable, refused, a strange
    answer) is logged at debug level and the run paces itself from its own jobs instead.
    """
    try:
        spec = get_model(model)
        found = await api.model_durations([spec.api_id])
    except Exception as exc:  # noqa: BLE001 - the figures are optional; the run goes on without them
        log.debug("no model metrics for %s (%s); polls are paced from the run's own jobs", model, exc)
        return None
    for name in (spec.api_id, *spec.aliases):
        if name in found:
            return found[name]
    log.debug("the provider reports no recent jobs of %s; polls are paced from the run's own jobs", spec.api_id)
    return None


async def submit(
    api: VideoApi,
    row: Row,
    journal: Journal,
    limiter: AdmissionLimiter,
    *,
    run: str | None = None,
    body: dict[str, object] | None = None,
    sends: int = 0,
    backoff: Backoff = SUBMIT_BACKOFF,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.time,
) -> Submission:
    """Start the row's generation once a slot is free; the id is journaled before returning.

    On success the caller owns an accepted slot and must ``limiter.release(accepted=True)``
    when the job ends. On failure the slot is already released. Only a create that cannot
    have started a job is sent again (429, connection refused, 503); any other failure
    after the request may have reached the provider raises :class:`SubmitUnknown` and
    leaves the ``sending`` entry in the journal. ``sends`` is how many creates were ever
    sent for the row before (the journal's count): each create carries a new client
    request id, by which the provider's logs find it if its answer is lost.
    """
    route = get_model(row.model).route(row.route)
    request = body if body is not None else row.request_body()
    attempts = 0
    refusals = 0
    rate_limits = 0
    await limiter.acquire()
    while True:
        attempts += 1
        sends += 1
        submitted_at = clock()
        try:
            client_id = await journal.sending(
                row.key, model=row.model, route=route.name, at=submitted_at, run=run, sends=sends
            )
        except BaseException:
            limiter.release(accepted=False)
            raise
        # The job's clock starts when the provider takes the create, not when the intent
        # was written (the journal write can take milliseconds) nor while the request
        # waited for a connection: polls are paced from there.
        sent_at = clock()
        try:
            generation = await api.create(route, request, client_request_id=client_id)
        except RateLimited as exc:
            rate_limits += 1
            limiter.rejected(exc.retry_after)
            await _withdraw(journal, row)
            wait = RATE_LIMIT_BACKOFF.delay(rate_limits, exc)
            log.debug("row %s: create answered 429; again in %.2fs", row.index, wait)
            await sleep(wait)
            await limiter.acquire(first=True)
            continue
        except BaseException as exc:
            certain = is_safe_to_resubmit(exc) or isinstance(exc, (RequestRejected, *RUN_FATAL))
            if certain and isinstance(exc, Exception):
                await _withdraw(journal, row)
            if isinstance(exc, Exception) and is_safe_to_resubmit(exc) and refusals + 1 < backoff.attempts:
                refusals += 1
                wait = backoff.delay(refusals, exc)
                log.warning("row %s: create attempt %d failed (%s); again in %.1fs", row.index, attempts, exc, wait)
                try:
                    await sleep(wait)
                except BaseException:
                    limiter.release(accepted=False)
                    raise
                continue
            limiter.release(accepted=False)
            exc.attempts = attempts  # type: ignore[attr-defined]
            if certain or not isinstance(exc, Exception):
                raise
            raise SubmitUnknown(
                f"create may have started a job but gave no id ({exc}); not resent, to avoid paying twice",
                status=getattr(exc, "status", None),
            ) from exc
        limiter.accepted()
        sent_at += generation.queued_s
        submission = Submission(
            row_key=row.key,
            model=row.model,
            generation_id=generation.id,
            route=route.name,
            submitted_at=sent_at,
            attempts=attempts,
            run=run,
            client_request_id=client_id,
            sends=sends,
        )
        try:
            await journal.save(submission)
        except StorageError as exc:
            # The job exists and is paid for; waiting for it beats failing the row.
            log.warning("row %s: generation %s not journaled (%s)", row.index, generation.id, exc)
        return submission


async def _withdraw(journal: Journal, row: Row) -> None:
    try:
        await journal.withdraw(row.key)
    except StorageError as exc:
        # The entry stays "sending": a rerun will treat the row as unknown, which is safe.
        log.warning("row %s: could not withdraw the journal intent (%s)", row.index, exc)


async def fresh_video_url(api: VideoApi, submission: Submission, *, backoff: Backoff = SUBMIT_BACKOFF) -> str | None:
    """The video URL the generation gives now (its last one expired or was refused); None if it has none."""
    generation = await _fetch_again(api, submission, backoff)
    return generation.video_url if generation is not None and generation.is_completed else None


async def still_live(api: VideoApi, submission: Submission, *, backoff: Backoff = SUBMIT_BACKOFF) -> bool:
    """Whether a journaled generation can still deliver its video."""
    generation = await _fetch_again(api, submission, backoff)
    if generation is None:
        return False
    return generation.is_running or (generation.is_completed and generation.video_url is not None)


async def _fetch_again(api: VideoApi, submission: Submission, backoff: Backoff) -> Generation | None:
    """The generation as the provider tells it now (transient errors retried); None if it no longer knows it."""
    route = get_model(submission.model).route(submission.route)
    try:
        generation, _ = await call_with_retries(
            lambda: api.fetch(route, submission.generation_id), retry_if=is_transient, backoff=backoff
        )
    except RequestRejected:
        return None
    return generation


async def wait_for_video(
    api: VideoApi,
    submission: Submission,
    pacer: PollPacer,
    *,
    job: Hashable,
    deadline: float,
    max_consecutive_errors: int = 4,
    backoff: Backoff | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.time,
) -> Finished:
    """Poll until the job completes, fails, or ``deadline`` (unix seconds) passes.

    Polls follow ``pacer``'s schedule for the job's class ``job``; a re-attached job is
    polled at once and teaches the pacer nothing. A single failed poll is only a missed
    poll: transient errors are absorbed until ``max_consecutive_errors`` in a row, then
    raised for the caller's retry policy. A 429 waits at least its ``Retry-After``.
    """
    backoff = backoff or Backoff(initial_s=pacer.poll_interval_s, max_s=max(pacer.poll_interval_s, 60.0))
    route = get_model(submission.model).route(submission.route)
    polls = pacer.start(job)
    count = 0
    errors = 0
    last_status = "unknown"
    # A re-attached job may have finished long ago: ask at once.
    wait = 0.0 if submission.reattached else pacer.delay(polls, clock() - submission.submitted_at)
    while True:
        await sleep(_bounded(wait, deadline, clock))
        count += 1
        # The answer tells the job's status when the poll was sent: time it from then (after
        # any wait for a connection), so a slow answer (a busy loop) never teaches the pacer
        # that jobs take longer, nor a queue for connections that they take less.
        asked = clock() - submission.submitted_at
        try:
            generation = await api.fetch(route, submission.generation_id)
            asked += generation.queued_s
        except RateLimited as exc:
            wait = max(pacer.delay(polls, clock() - submission.submitted_at), exc.retry_after or 0.0)
        except Exception as exc:
            if not is_transient(exc):
                raise
            errors += 1
            if errors >= max_consecutive_errors:
                exc.polls = count  # type: ignore[attr-defined]
                raise
            wait = backoff.delay(errors, exc)
        else:
            errors = 0
            last_status = generation.status
            if generation.is_completed:
                if generation.video_url is None:
                    raise BadResponse(f"generation {generation.id} is completed but has no video URL")
                if not submission.reattached:
                    pacer.finished(polls, asked)
                return Finished(
                    submission, generation.video_url, clock(), count, generation.credits_used, generation.usd_spent
                )
            if generation.is_failed:
                raise _failure(generation, count)
            pacer.polled(polls, asked, running=generation.is_running)
            wait = pacer.delay(polls, clock() - submission.submitted_at)
        # Judged after a poll, never before: a re-attached job may be past its deadline
        # and yet completed, with its video still downloadable.
        if clock() >= deadline:
            message = _timeout_message(submission, last_status, deadline)
            raise GenerationTimeout(message, generation_id=submission.generation_id, polls=count)


def _failure(generation: Generation, polls: int) -> GenerationFailed:
    name = generation.error_name or generation.status
    detail = generation.error_message or f"the job ended in status {generation.status!r} without a message"
    return GenerationFailed(
        f"{name}: {detail}", generation_id=generation.id, polls=polls, error_name=generation.error_name
    )


def _timeout_message(submission: Submission, last_status: str, deadline: float) -> str:
    waited = deadline - submission.submitted_at
    known = "" if last_status == "unknown" else f"; last status {last_status!r}"
    return f"generation {submission.generation_id} not finished after {waited:.0f}s{known}"


def _bounded(wait: float, deadline: float, clock: Clock) -> float:
    return max(0.0, min(wait, deadline - clock()))
