"""What may be retried, and how long to wait before doing it.

Two different questions get two predicates:

* :func:`is_transient` — may this *idempotent* operation (a status fetch, a download,
  a storage write) simply be tried again? Transport errors, 429 and 5xx: yes.
* :func:`is_safe_to_resubmit` — may a *create* be sent again? Only when the first one
  certainly did not start a job: the connection was never made, the API said 429
  (nothing was queued), or 503 (the service refused the request). A read timeout or a
  500 after the body was sent leaves the outcome unknown, and a blind resend could
  start, and bill, a second job.

Both are plain functions of the exception, so they can serve as Prefect's
``retry_condition_fn`` through a thin adapter in ``tasks/``.

A 429 on a create is not retried here at all: it is the admission limiter's business
(:mod:`i2v.engine.admission`), and it never fails a row.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from i2v.errors import (
    BadResponse,
    DownloadError,
    DownloadRefused,
    RateLimited,
    ServerError,
    StorageError,
    TransportError,
)

T = TypeVar("T")
_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later identical request may not hit."""
    if isinstance(exc, (TransportError, RateLimited, ServerError, BadResponse)):
        return True
    if isinstance(exc, DownloadRefused):
        return False
    if isinstance(exc, DownloadError):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    if isinstance(exc, StorageError):
        return exc.transient
    return False


def is_safe_to_resubmit(exc: BaseException) -> bool:
    """True only when a failed create certainly did not start a job."""
    if isinstance(exc, RateLimited):
        return True
    if isinstance(exc, ServerError):
        return exc.status == 503
    if isinstance(exc, TransportError):
        return not exc.sent
    return False


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full-range jitter, capped, honouring ``Retry-After``."""

    attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.25

    def delay(self, attempt: int, exc: BaseException | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        rng = rng or _RNG
        base = min(self.max_s, self.initial_s * 2 ** (attempt - 1))
        wait = base * (1 + self.jitter * (2 * rng.random() - 1))
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, RateLimited) and retry_after is not None:
            # The server said when; never come back earlier, and spread the herd a little.
            wait = retry_after + self.jitter * rng.random()
        return max(0.0, float(wait))


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    retry_if: Callable[[BaseException], bool],
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[T, int]:
    """Call ``fn`` until it succeeds or fails for good; return its value and the attempts used.

    Only exceptions for which ``retry_if`` is true are retried; the last one is re-raised
    with an ``attempts`` attribute so callers can report how hard they tried.
    """
    attempt = 1
    while True:
        try:
            return await fn(), attempt
        except Exception as exc:
            if attempt >= backoff.attempts or not retry_if(exc):
                exc.attempts = attempt  # type: ignore[attr-defined]
                raise
            wait = backoff.delay(attempt, exc)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            await sleep(wait)
            attempt += 1
