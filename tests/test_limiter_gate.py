"""Admission control with shared slots: a gate several limiters (workers) take slots from."""

from __future__ import annotations

import asyncio

import pytest

from i2v.engine.admission import AdmissionLimiter
from i2v.errors import AuthError, Stopped

pytestmark = pytest.mark.anyio


class Gate:
    """Shared slots in memory: at most ``size`` held at once, counting every take and give-back."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self.held = 0
        self.peak = 0
        self.taken = 0
        self.given_back = 0

    async def acquire(self) -> None:
        await self._slots.acquire()
        self.held += 1
        self.taken += 1
        self.peak = max(self.peak, self.held)

    def release(self) -> None:
        self.held -= 1
        self.given_back += 1
        self._slots.release()


async def test_every_slot_takes_a_gate_slot_and_gives_it_back() -> None:
    """Acquire takes a gate slot; release, and a 429's rejection, give it back."""
    gate = Gate(5)
    limiter = AdmissionLimiter(4, gate=gate)
    await limiter.acquire()
    await limiter.acquire()
    assert (gate.held, limiter.stats().in_flight) == (2, 2)
    limiter.rejected(retry_after=None)
    assert (gate.held, limiter.stats().in_flight) == (1, 1)
    limiter.accepted()
    limiter.release(accepted=True)
    assert (gate.held, gate.taken, gate.given_back) == (0, 2, 2)


async def test_two_limiters_together_stay_under_the_gate() -> None:
    """Two workers allowed eight jobs each never hold more than the gate's three, and every row runs."""
    gate = Gate(3)
    done = 0

    async def row(limiter: AdmissionLimiter) -> None:
        nonlocal done
        await limiter.acquire()
        limiter.accepted()
        await asyncio.sleep(0.002)
        limiter.release(accepted=True)
        done += 1

    workers = [AdmissionLimiter(8, initial=8, gate=gate) for _ in range(2)]
    await asyncio.gather(*(row(workers[i % 2]) for i in range(40)))
    assert done == 40
    assert gate.peak == 3
    assert max(w.stats().peak_in_flight for w in workers) > 3, "each worker alone would have sent more"
    assert gate.held == 0


async def test_cancelled_while_waiting_for_the_gate_gives_back_its_own_slot_only() -> None:
    """A caller cancelled while the gate is full frees its limiter slot and returns no gate slot."""
    gate = Gate(1)
    limiter = AdmissionLimiter(4, gate=gate)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    assert limiter.stats().in_flight == 2
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (limiter.stats().in_flight, gate.held, gate.given_back) == (1, 1, 0)


async def test_an_adopted_job_is_paid_for_by_the_next_slot_given_back() -> None:
    """A re-attached job takes no gate slot; the first release after it keeps its slot, later ones return theirs."""
    gate = Gate(4)
    limiter = AdmissionLimiter(4, gate=gate)
    await limiter.acquire()
    limiter.accepted()
    limiter.adopt()
    assert (limiter.stats().in_flight, gate.held) == (2, 1)
    limiter.release(accepted=True)
    assert (limiter.stats().in_flight, gate.held) == (1, 1), "two jobs ran on one gate slot; now one on one"
    limiter.release(accepted=True)
    assert (limiter.stats().in_flight, gate.held) == (0, 0)


async def test_stopped_while_waiting_for_the_gate_returns_both_slots() -> None:
    """A run stopping while a caller waits for the gate: the caller gets Stopped and hands back both slots."""
    gate = Gate(1)
    limiter = AdmissionLimiter(4, gate=gate)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    limiter.stop(AuthError("HTTP 401: bad key"))
    limiter.release(accepted=False)
    with pytest.raises(Stopped):
        await waiting
    assert (limiter.stats().in_flight, gate.held) == (0, 0)


async def test_a_gate_that_fails_leaves_the_limiter_as_it_was() -> None:
    """An error from the gate (its server is down) is raised, and the limiter's slot is not kept."""

    class Broken:
        async def acquire(self) -> None:
            raise ConnectionError("the Prefect API is unreachable")

        def release(self) -> None:
            raise AssertionError("nothing was taken")

    limiter = AdmissionLimiter(4, gate=Broken())
    with pytest.raises(ConnectionError):
        await limiter.acquire()
    assert limiter.stats().in_flight == 0


async def test_the_limiter_is_pressed_while_anyone_waits_for_a_slot() -> None:
    """Rows queued here, at the gate, or a gate that says others wait: each makes the limiter pressed."""
    gate = Gate(1)
    limiter = AdmissionLimiter(2, initial=2, gate=gate)
    assert not limiter.pressed()
    await limiter.acquire()
    second = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.pressed(), "a row waits for the gate's only slot"
    limiter.accepted()
    limiter.release(accepted=True)
    await second
    assert not limiter.pressed()
    gate.contended = True  # type: ignore[attr-defined]
    assert limiter.pressed(), "the shared limit says others are waiting"
