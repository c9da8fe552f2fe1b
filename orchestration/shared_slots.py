"""The provider's concurrency shared by every worker: a Prefect global concurrency limit.

Each process's :class:`~i2v.engine.admission.AdmissionLimiter` learns how many jobs it may keep at
the provider, but one account's jobs may come from many workers at once. A global
concurrency limit on the Prefect server caps them together: before every create the
limiter takes one of its slots through :class:`GlobalLimitSlots`, and gives it back when
the job ends (or the create made none).

A job outlives any context manager around the create, so slots are taken and given
back one at a time through Prefect's lease API (what ``prefect.concurrency.asyncio``'s
``concurrency()`` uses inside): each slot is a lease the server frees by itself if this
process dies and stops renewing it, so a crashed worker cannot hold slots for ever.
Leases held here are renewed every third of their duration.

The limit's name comes from ``I2V_CONCURRENCY_LIMIT`` (set in the deployments' job
variables by ``make deploy``); without it there is no shared limit. Create the limit
first: ``prefect gcl create NAME --limit N`` (``make deploy`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client

from i2v.engine.admission import AdmissionLimiter
from i2v.errors import ConfigError

log = logging.getLogger(__name__)

#: Names the global concurrency limit every worker shares; unset means no shared limit.
LIMIT_ENV = "I2V_CONCURRENCY_LIMIT"
#: Seconds a slot's lease lasts without renewal (Prefect's minimum is 60).
LEASE_S = 60.0
#: Longest wait between two tries for a slot while the limit is full. The server names a
#: wait from how long slots are held (up to 30 s); shorter keeps the limit full.
MAX_WAIT_S = 1.0
_LOCKED = 423
#: The limit counts as contended this long after it was last seen full.
CONTENDED_S = 30.0


def limit_name(env: dict[str, str] | None = None) -> str | None:
    """The shared limit's name from the environment, or None."""
    name = (os.environ if env is None else env).get(LIMIT_ENV, "").strip()
    return name or None


class GlobalLimitSlots:
    """Slots of the Prefect global concurrency limit ``name`` (an :class:`~i2v.engine.admission.SharedSlots`).

    One process waits for slots one caller at a time, first come first served, so a full
    limit costs the server one request per process per wait, not one per waiting row.
    """

    def __init__(self, name: str, *, lease_s: float = LEASE_S, max_wait_s: float = MAX_WAIT_S) -> None:
        self.name = name
        self.lease_s = lease_s
        self.max_wait_s = max_wait_s
        self._leases: deque[UUID] = deque()
        self._turn: asyncio.Lock | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._missing: ConfigError | None = None
        # Renewing lasts the run, and a task keeps the context it was made in: made from a
        # row's, it would hold that batch's task run (its rows) to the end. The context here
        # is the one the engine was built in, which lasts the run anyway.
        self._context = contextvars.copy_context()
        self._full_at: float | None = None

    @property
    def contended(self) -> bool:
        """Whether the limit was full lately (a slot refused here, or every slot taken at the last look).

        Others may then be waiting for a slot this process holds, so its finished jobs are
        worth noticing sooner (see :meth:`~i2v.engine.admission.AdmissionLimiter.pressed`).
        """
        return self._full_at is not None and time.monotonic() - self._full_at < CONTENDED_S

    @property
    def held(self) -> int:
        """Slots this process holds now."""
        return len(self._leases)

    async def acquire(self) -> None:
        """Wait for a slot of the limit."""
        if self._missing is not None:
            raise self._missing
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            while True:
                request = asyncio.ensure_future(self._try())
                try:
                    lease, wait = await asyncio.shield(request)
                except asyncio.CancelledError:
                    # The server may grant the slot after the caller has gone: give it back.
                    request.add_done_callback(self._release_orphan)
                    raise
                if lease is not None:
                    self._leases.append(lease)
                    self._start_renewing()
                    return
                await asyncio.sleep(wait)

    def release(self) -> None:
        """Give a slot back; the call to the server finishes in the background."""
        if not self._leases:
            log.warning("concurrency limit %r: a slot was given back that was never taken", self.name)
            return
        self._spawn(self._release(self._leases.popleft()))

    async def aclose(self) -> None:
        """Finish giving slots back (and give back any still held); stop renewing."""
        while self._leases:
            self._spawn(self._release(self._leases.popleft()))
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- internals ------------------------------------------------------------------

    async def _try(self) -> tuple[UUID | None, float]:
        """One request: the slot's lease, or None and how long to wait before the next try."""
        async with get_client() as client:
            try:
                response = await client.increment_concurrency_slots_with_lease(
                    names=[self.name], slots=1, mode="concurrency", lease_duration=self.lease_s
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != _LOCKED:
                    raise
                self._full_at = time.monotonic()
                return None, _wait(exc.response.headers.get("Retry-After"), self.max_wait_s)
        data = response.json()
        if not data.get("limits"):
            self._missing = ConfigError(
                f"no global concurrency limit named {self.name!r} on the Prefect server"
                f" ({LIMIT_ENV}); create it with `prefect gcl create {self.name} --limit N`"
            )
            raise self._missing
        return UUID(data["lease_id"]), 0.0

    async def _release(self, lease: UUID) -> None:
        try:
            async with get_client() as client:
                await client.release_concurrency_slots_with_lease(lease_id=lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own; say so and go on
            log.warning("concurrency limit %r: giving back a slot failed (%s); its lease will expire", self.name, exc)

    def _release_orphan(self, request: asyncio.Future[tuple[UUID | None, float]]) -> None:
        if request.cancelled() or request.exception() is not None:
            return
        lease, _ = request.result()
        if lease is not None:
            self._spawn(self._release(lease))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(), context=self._context.copy())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for lease in list(self._leases):
                try:
                    async with get_client() as client:
                        await client.renew_concurrency_lease(lease_id=lease, lease_duration=self.lease_s)
                except Exception as exc:  # noqa: BLE001 - a lost lease costs accuracy, not the run
                    log.warning("concurrency limit %r: renewing a slot's lease failed: %s", self.name, exc)
            await self._look_at_the_limit()

    async def _look_at_the_limit(self) -> None:
        """Note whether every slot of the limit is taken: other workers may be waiting for one."""
        try:
            async with get_client() as client:
                limit = await client.read_global_concurrency_limit_by_name(self.name)
        except Exception as exc:  # noqa: BLE001 - only the pace of polls depends on it
            log.debug("concurrency limit %r: not read (%s)", self.name, exc)
            return
        if limit.active_slots >= limit.limit:
            self._full_at = time.monotonic()


def _wait(retry_after: str | None, longest: float) -> float:
    try:
        named = float(retry_after) if retry_after else longest
    except ValueError:
        named = longest
    return min(max(named, 0.05), longest)


def from_env() -> GlobalLimitSlots | None:
    """The shared limit named by ``I2V_CONCURRENCY_LIMIT``, if any."""
    name = limit_name()
    return GlobalLimitSlots(name) if name else None


async def aclose(limiter: AdmissionLimiter) -> None:
    """Give back what the limiter's shared slots still owe the server (the run is over here)."""
    if isinstance(limiter.gate, GlobalLimitSlots):
        await limiter.gate.aclose()
