"""Submitting a row and waiting for its video: the two steps that cost money and time.

Both take their collaborators (API client, journal, clock, sleep) as arguments so they
can be driven by a test clock as easily as by Prefect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from i2v.api import Generation, VideoApi
from i2v.errors import (
    BadResponse,
    GenerationFailed,
    GenerationTimeout,
    RateLimited,
    RequestRejected,
    StorageError,
)
from i2v.journal import Journal, Submission
from i2v.models import get_model
from i2v.retry import Backoff, call_with_retries, is_safe_to_resubmit, is_transient
from i2v.rows import Row

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]

SUBMIT_BACKOFF = Backoff(attempts=6, initial_s=2.0, max_s=60.0)


@dataclass(frozen=True)
class Finished:
    """A completed generation whose video is waiting at ``video_url``."""

    submission: Submission
    video_url: str
    completed_at: float
    polls: int
    credits_used: float | None


def submit(
    api: VideoApi,
    row: Row,
    journal: Journal,
    *,
    backoff: Backoff = SUBMIT_BACKOFF,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
) -> Submission:
    """Start the row's generation, or re-attach to one a previous run started.

    The generation id is written to the journal before this returns, so a crash while
    waiting costs a re-attach, not a second payment.
    """
    route = get_model(row.model).route(row.route)
    previous = journal.load(row.key)
    if previous is not None:
        live = _still_live(api, previous, backoff=backoff, sleep=sleep)
        if live:
            log.info("row %s: re-attached to generation %s", row.index, previous.generation_id)
            return replace(previous, attempts=0, reattached=True)
    body = row.request_body()
    submitted_at = clock()
    generation, attempts = call_with_retries(
        lambda: api.create(route, body),
        retry_if=is_safe_to_resubmit,
        backoff=backoff,
        sleep=sleep,
        on_retry=lambda n, exc, wait: log.warning(
            "row %s: create attempt %d failed (%s); again in %.1fs", row.index, n, exc, wait
        ),
    )
    submission = Submission(
        row_key=row.key,
        model=row.model,
        generation_id=generation.id,
        route=route.name,
        submitted_at=submitted_at,
        attempts=attempts,
    )
    try:
        journal.save(submission)
    except StorageError as exc:
        # The job exists and is paid for; waiting for it beats failing the row.
        log.warning(
            "row %s: generation %s not journaled (%s); a crash now would lose it", row.index, generation.id, exc
        )
    return submission


def _still_live(api: VideoApi, previous: Submission, *, backoff: Backoff, sleep: Sleep) -> bool:
    """Whether a journaled generation can still deliver its video."""
    route = get_model(previous.model).route(previous.route)
    try:
        generation, _ = call_with_retries(
            lambda: api.fetch(route, previous.generation_id), retry_if=is_transient, backoff=backoff, sleep=sleep
        )
    except RequestRejected:
        return False
    return generation.is_running or (generation.is_completed and generation.video_url is not None)


def wait_for_video(
    api: VideoApi,
    submission: Submission,
    *,
    deadline: float,
    interval_s: float,
    max_consecutive_errors: int = 4,
    backoff: Backoff | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
) -> Finished:
    """Poll until the job completes, fails, or ``deadline`` (unix seconds) passes.

    A single failed poll is only a missed poll: transient errors are absorbed until
    ``max_consecutive_errors`` in a row, then raised for the caller's retry policy.
    A 429 slows polling down to the server's ``Retry-After``. Without an explicit
    ``backoff``, waits after errors start at the poll interval and grow from there.
    """
    backoff = backoff or Backoff(initial_s=interval_s, max_s=max(interval_s, 60.0))
    route = get_model(submission.model).route(submission.route)
    polls = 0
    errors = 0
    last_status = "unknown"
    # Always ask at least once before judging the deadline: a job re-attached after a
    # crash may be long past it and yet completed, with its video still downloadable.
    while True:
        polls += 1
        try:
            generation = api.fetch(route, submission.generation_id)
        except RateLimited as exc:
            wait = max(interval_s, exc.retry_after or 0.0)
        except Exception as exc:
            if not is_transient(exc):
                raise
            errors += 1
            if errors >= max_consecutive_errors:
                exc.polls = polls  # type: ignore[attr-defined]
                raise
            wait = backoff.delay(errors, exc)
        else:
            errors = 0
            last_status = generation.status
            if generation.is_completed:
                if generation.video_url is None:
                    raise BadResponse(f"generation {generation.id} is completed but has no video URL")
                return Finished(submission, generation.video_url, clock(), polls, generation.credits_used)
            if generation.is_error:
                raise _failure(generation, polls)
            wait = interval_s
        if clock() >= deadline:
            message = _timeout_message(submission, last_status, deadline)
            raise GenerationTimeout(message, generation_id=submission.generation_id, polls=polls)
        sleep(_bounded(wait, deadline, clock))


def _failure(generation: Generation, polls: int) -> GenerationFailed:
    name = generation.error_name or "error"
    detail = generation.error_message or "the job ended in status 'error' without a message"
    return GenerationFailed(
        f"{name}: {detail}", generation_id=generation.id, polls=polls, error_name=generation.error_name
    )


def _timeout_message(submission: Submission, last_status: str, deadline: float) -> str:
    waited = deadline - submission.submitted_at
    known = "" if last_status == "unknown" else f"; last status {last_status!r}"
    return f"generation {submission.generation_id} not finished after {waited:.0f}s{known}"


def _bounded(wait: float, deadline: float, clock: Clock) -> float:
    return max(0.0, min(wait, deadline - clock()))
