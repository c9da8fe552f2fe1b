"""What is retried, and how long the waits are."""

from __future__ import annotations

import random

import pytest

from i2v.engine.retry import Backoff, call_with_retries, is_safe_to_resubmit, is_transient
from i2v.errors import (
    AuthError,
    DownloadError,
    GenerationFailed,
    RateLimited,
    RequestRejected,
    ServerError,
    StorageError,
    TransportError,
)


@pytest.mark.parametrize(
    ("exc", "transient", "resubmit"),
    [
        (RateLimited("429", retry_after=2), True, True),
        (ServerError("503", status=503), True, True),
        (ServerError("500", status=500), True, False),
        (ServerError("502", status=502), True, False),
        (TransportError("refused", sent=False), True, True),
        (TransportError("read timeout", sent=True), True, False),
        (AuthError("401", status=401), False, False),
        (RequestRejected("400", status=400), False, False),
        (DownloadError("expired", status=403), False, False),
        (DownloadError("broken stream"), True, False),
        (DownloadError("cdn 502", status=502), True, False),
        (StorageError("slow down", transient=True), True, False),
        (StorageError("denied", transient=False), False, False),
        (GenerationFailed("x", generation_id="g"), False, False),
        (ValueError("bug"), False, False),
    ],
)
def test_predicates(exc: Exception, transient: bool, resubmit: bool) -> None:
    """Idempotent steps retry transport/429/5xx; a create is resent only when it cannot have started a job."""
    assert is_transient(exc) is transient
    assert is_safe_to_resubmit(exc) is resubmit


def test_backoff_grows_caps_and_honours_retry_after() -> None:
    """Waits double up to the cap, with bounded jitter; Retry-After sets the floor."""
    backoff = Backoff(initial_s=1, max_s=8, jitter=0.25)
    rng = random.Random(1)
    waits = [backoff.delay(n, rng=rng) for n in range(1, 7)]
    for n, wait in enumerate(waits, start=1):
        base = min(8, 2 ** (n - 1))
        assert base * 0.75 <= wait <= base * 1.25
    limited = RateLimited("slow down", retry_after=30)
    assert 30 <= backoff.delay(1, limited, rng=rng) <= 30.25


@pytest.mark.anyio
async def test_call_with_retries_counts_attempts_and_stops_on_permanent_errors() -> None:
    """Retryable failures are retried up to the limit; others raise at once with the attempt count."""
    outcomes: list[Exception | str] = [ServerError("x", status=503), RateLimited("y", retry_after=0), "ok"]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def flaky() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    value, attempts = await call_with_retries(
        flaky, retry_if=is_safe_to_resubmit, backoff=Backoff(initial_s=0.01), sleep=sleep
    )
    assert (value, attempts, len(slept)) == ("ok", 3, 2)

    async def rejected() -> str:
        raise RequestRejected("bad", status=400)

    with pytest.raises(RequestRejected) as info:
        await call_with_retries(rejected, retry_if=is_safe_to_resubmit, backoff=Backoff(), sleep=sleep)
    assert info.value.attempts == 1  # type: ignore[attr-defined]

    async def always_busy() -> str:
        raise RateLimited("busy", retry_after=0)

    with pytest.raises(RateLimited) as busy:
        await call_with_retries(
            always_busy, retry_if=is_transient, backoff=Backoff(attempts=3, initial_s=0), sleep=sleep
        )
    assert busy.value.attempts == 3  # type: ignore[attr-defined]
