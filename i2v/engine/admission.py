"""Admission control: how many jobs the run keeps at the provider at once.

The provider's concurrency is the bottleneck of a bulk run, and providers rarely
publish it. :class:`AdmissionLimiter` learns it, the way TCP learns a path's capacity:

* **Slow start.** The target starts small and grows by one for every accepted create,
  doubling each round trip, until the first 429 or ``max_in_flight``.
* **Decrease to what the provider holds.** A 429 on a create means "not now": the
  provider is holding as many of our jobs as it will. The target drops to the number
  of our jobs it accepted and has not yet finished (never below one), and the rejected
  create gives its slot back and waits its turn again. A 429 never fails a row.
* **Additive increase.** After that, the target grows by one per full window of
  accepted creates: one probe above the learned capacity per window, so a limit set
  too high costs a few 429s, not a 429 per row.
* **Retry-After** holds growth back: no probe above the target before the time the
  provider named. Slots freed by finished jobs are refilled meanwhile, because that
  keeps the run at, not above, what the provider just accepted.
* **Shared slots.** When several processes (workers) send to one provider account,
  an optional :class:`SharedSlots` gate caps them together: a granted slot also takes
  one of the gate's slots before the create is sent, and gives it back whenever the
  slot is given back.

Waiters are served first come, first served; a create sent back by a 429 rejoins at
the head of the queue, so no row starves. Every state change happens on one event
loop, so there are no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from i2v.errors import I2VError, Stopped

#: Slow start begins here (or at ``max_in_flight`` when that is lower).
INITIAL_TARGET = 4


class SharedSlots(Protocol):
    """Slots shared with other processes, e.g. a Prefect global concurrency limit.

    ``acquire`` waits for a slot; ``release`` gives one back without waiting (it may
    finish in the background). Slots are interchangeable: any release returns any slot.
    """

    async def acquire(self) -> None: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of the limiter, for progress lines and benchmarks."""

    target: float
    in_flight: int
    accepted: int
    waiting: int
    rejections: int
    peak_in_flight: int


class AdmissionLimiter:
    """Owns admission to the provider: the in-flight target, its backoff state and the queue.

    A slot is taken with :meth:`acquire` before a create is sent, and ends one of three
    ways: :meth:`rejected` (429: no job was made), :meth:`accepted` then :meth:`release`
    (the job ran and has ended), or :meth:`release` alone (the create failed otherwise).
    A re-attached job that is already running takes its slot with :meth:`adopt`.

    With a ``gate``, :meth:`acquire` also waits for one of the gate's slots after its
    own, and :meth:`rejected` and :meth:`release` give one back. An adopted job is
    already at the provider, so it does not wait: the next slot given back keeps its
    gate slot instead of returning it, which makes the count right again.
    """

    def __init__(
        self,
        max_in_flight: int,
        *,
        initial: int = INITIAL_TARGET,
        clock: Callable[[], float] = time.monotonic,
        gate: SharedSlots | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._target = float(min(max_in_flight, max(1, initial)))
        self._slow_start = True
        self._hold_until = 0.0
        self._in_flight = 0
        self._accepted = 0
        self._rejections = 0
        self._peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._stopped: Stopped | None = None
        self._gate = gate
        #: Slots in flight holding no gate slot (adopted jobs), paid back on release.
        self._unbacked = 0
        #: Callers holding their own slot and waiting for a gate slot.
        self._at_gate = 0

    # --- taking and returning slots -------------------------------------------------

    async def acquire(self, *, first: bool = False) -> None:
        """Wait for a slot (and then a gate slot); ``first`` puts the caller at the head of the queue.

        Raises :class:`Stopped` once the run has stopped admitting work.
        """
        await self._acquire_own(first=first)
        if self._gate is None:
            return
        self._at_gate += 1
        try:
            await self._gate.acquire()
        except BaseException:
            self._give_back()
            raise
        finally:
            self._at_gate -= 1
        if self._stopped is not None:
            self._gate.release()
            self._give_back()
            raise self._stopped

    async def _acquire_own(self, *, first: bool) -> None:
        if self._stopped is not None:
            raise self._stopped
        if not self._waiters and self._in_flight < self._allowed():
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if first:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted just as the caller was cancelled: hand the slot on.
                self._give_back()
            else:
                self._discard(waiter)
            raise

    def adopt(self) -> None:
        """Count a job that is already running at the provider (re-attached after a crash)."""
        self._take()
        self._accepted += 1
        if self._gate is not None:
            self._unbacked += 1

    def accepted(self) -> None:
        """The create was answered with a job: it holds its slot until :meth:`release`."""
        self._accepted += 1
        if self._clock() < self._hold_until:
            return
        growth = 1.0 if self._slow_start else 1.0 / self._target
        self._target = min(float(self.max_in_flight), self._target + growth)
        self._grant()

    def rejected(self, retry_after: float | None = None) -> None:
        """The create was answered 429: no job; the slot is given back and the target shrinks."""
        self._rejections += 1
        self._slow_start = False
        self._target = max(1.0, min(self._target, float(self._accepted)))
        if retry_after:
            self._hold_until = max(self._hold_until, self._clock() + retry_after)
        self._release_gate()
        self._give_back()

    def release(self, *, accepted: bool) -> None:
        """The slot's job has ended (``accepted``), or its create failed without making one."""
        if accepted:
            self._accepted -= 1
        self._release_gate()
        self._give_back()

    # --- stopping -------------------------------------------------------------------

    def stop(self, reason: I2VError) -> Stopped:
        """Admit nothing more: every waiter, and every later caller, gets :class:`Stopped`."""
        if self._stopped is None:
            if isinstance(reason, Stopped):
                self._stopped = reason
            else:
                self._stopped = Stopped(f"the run stopped: {reason}", cause=reason)
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(self._stopped)
        return self._stopped

    @property
    def stopped(self) -> Stopped | None:
        return self._stopped

    @property
    def gate(self) -> SharedSlots | None:
        return self._gate

    def pressed(self) -> bool:
        """Whether work waits for a slot: here, at the gate, or (the gate says) in other processes.

        A job that may have finished then holds a slot someone wants, so the poll pacer
        looks at such jobs sooner (:class:`~i2v.engine.pacing.PollPacer`'s ``pressure``).
        """
        # `contended` is optional for a gate: a gate that cannot tell says nothing.
        return bool(self._waiters) or self._at_gate > 0 or bool(getattr(self._gate, "contended", False))

    def stats(self) -> LimiterStats:
        return LimiterStats(
            target=round(self._target, 2),
            in_flight=self._in_flight,
            accepted=self._accepted,
            waiting=len(self._waiters),
            rejections=self._rejections,
            peak_in_flight=self._peak,
        )

    # --- internals ------------------------------------------------------------------

    def _allowed(self) -> int:
        return max(1, math.floor(self._target))

    def _take(self) -> None:
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)

    def _release_gate(self) -> None:
        if self._gate is None:
            return
        if self._unbacked:
            self._unbacked -= 1
        else:
            self._gate.release()

    def _give_back(self) -> None:
        self._in_flight -= 1
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._in_flight < self._allowed():
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self._take()
            waiter.set_result(None)

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
