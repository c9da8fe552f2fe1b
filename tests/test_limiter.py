"""Admission control: slow start, decrease on 429, additive increase, Retry-After, FIFO, stop."""

from __future__ import annotations

import asyncio

import pytest

from i2v.engine.admission import AdmissionLimiter
from i2v.errors import AuthError, Stopped

pytestmark = pytest.mark.anyio


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Provider:
    """A provider that holds at most ``capacity`` jobs and answers 429 beyond."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self.peak = 0
        self.rejected = 0

    async def row(self, limiter: AdmissionLimiter, seconds: float) -> None:
        await limiter.acquire()
        while True:
            await asyncio.sleep(0)  # the create's round trip
            if self.held < self.capacity:
                break
            self.rejected += 1
            limiter.rejected(retry_after=None)
            await asyncio.sleep(0.002)
            await limiter.acquire(first=True)
        self.held += 1
        self.peak = max(self.peak, self.held)
        limiter.accepted()
        await asyncio.sleep(seconds)
        self.held -= 1
        limiter.release(accepted=True)


async def test_slow_start_doubles_until_the_cap() -> None:
    """Every accepted create raises the target by one until max_in_flight."""
    limiter = AdmissionLimiter(10, initial=2)
    for _ in range(2):
        await limiter.acquire()
    assert limiter.stats().in_flight == 2
    limiter.accepted()
    limiter.accepted()
    assert limiter.stats().target == 4
    for _ in range(2):
        await limiter.acquire()
    for _ in range(2):
        limiter.accepted()
    assert limiter.stats().target == 6
    for _ in range(20):
        limiter.accepted()
    assert limiter.stats().target == 10, "never above max_in_flight"


async def test_429_drops_the_target_to_the_jobs_the_provider_holds() -> None:
    """After a 429 the target is what the provider accepted; growth is then one per window."""
    limiter = AdmissionLimiter(100, initial=100)
    for _ in range(8):
        await limiter.acquire()
    for _ in range(7):
        limiter.accepted()
    limiter.rejected()
    stats = limiter.stats()
    assert stats.target == 7
    assert stats.in_flight == 7
    assert stats.rejections == 1
    for _ in range(7):
        limiter.accepted()
    assert 7.9 < limiter.stats().target < 8.1, "one more slot after a full window of accepted creates"


async def test_retry_after_holds_growth_but_not_refills() -> None:
    """Until Retry-After passes the target does not grow, yet a slot freed by a finished job is refilled."""
    clock = Clock()
    limiter = AdmissionLimiter(10, initial=3, clock=clock)
    for _ in range(3):
        await limiter.acquire()
    limiter.accepted()
    limiter.accepted()
    limiter.rejected(retry_after=5)
    assert limiter.stats().target == 2
    limiter.accepted()
    assert limiter.stats().target == 2, "no growth while held"
    limiter.release(accepted=True)
    await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.stats().in_flight == 2
    clock.now += 6
    limiter.accepted()
    assert limiter.stats().target > 2


async def test_waiters_are_served_first_come_first_served_and_a_rejected_create_first() -> None:
    """Rows get slots in arrival order; a create sent back by a 429 rejoins at the head."""
    limiter = AdmissionLimiter(1, initial=1)
    await limiter.acquire()
    order: list[str] = []

    async def row(name: str, *, first: bool = False) -> None:
        await limiter.acquire(first=first)
        order.append(name)

    tasks = [asyncio.create_task(row(name)) for name in ("a", "b")]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(row("retry", first=True)))
    await asyncio.sleep(0)
    for _ in range(3):
        limiter.release(accepted=False)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["retry", "a", "b"]


async def test_cancelled_waiter_does_not_leak_its_slot() -> None:
    """A row cancelled while waiting, even just as its slot was granted, hands the slot on."""
    limiter = AdmissionLimiter(1, initial=1)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release(accepted=False)  # grants the waiter...
    waiting.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.stats().in_flight == 0
    await asyncio.wait_for(limiter.acquire(), 1)


async def test_stop_fails_every_waiter_and_every_later_caller() -> None:
    """After a run-fatal error nobody is admitted; waiters learn why."""
    limiter = AdmissionLimiter(1, initial=1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    stopped = limiter.stop(AuthError("HTTP 401: bad key", status=401))
    with pytest.raises(Stopped) as info:
        await waiter
    assert info.value is stopped
    assert info.value.kind == "auth"
    with pytest.raises(Stopped):
        await limiter.acquire()


async def test_a_limit_set_too_high_costs_few_429s() -> None:
    """Told 100 in flight against a provider that holds 50, 1,000 rows all finish with few 429s."""
    limiter = AdmissionLimiter(100)
    provider = Provider(capacity=50)
    durations = [0.01 + 0.01 * (i % 7) / 7 for i in range(1000)]
    await asyncio.gather(*(provider.row(limiter, seconds) for seconds in durations))
    assert provider.peak == 50
    assert provider.rejected <= 100, f"{provider.rejected} 429s for 1000 rows"
    assert 50 <= limiter.stats().target <= 60
    assert limiter.stats().in_flight == 0


def test_max_in_flight_must_be_positive() -> None:
    """A limiter that could admit nothing is a configuration error."""
    with pytest.raises(ValueError, match="at least 1"):
        AdmissionLimiter(0)
