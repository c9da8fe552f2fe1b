"""Blocking work (storage calls, decoding) run off the event loop, in a bounded pool.

The engine runs every row as a coroutine on one event loop. boto3, local file writes
and PyAV block, so they go through :class:`Offload`: a small, fixed thread pool shared
by the run. Threads serve short calls; no job ever waits in one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, Protocol, TypeVar

from i2v.engine.retry import Backoff, call_with_retries, is_transient

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_THREADS = 8


class Runs(Protocol):
    """Anything that runs a blocking call for a coroutine: an :class:`Offload`, or a wrapper of one."""

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


class Offload:
    """Call blocking functions from coroutines without blocking the loop."""

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="i2v-io")

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class Patient:
    """Blocking storage calls that wait out a short outage of the destination.

    A transient storage failure (a refused connection, a 5xx) is tried again with backoff
    for about half a minute before it becomes the row's failure; a halt cuts the wait.
    """

    def __init__(self, offload: Offload, sleep: Callable[[float], Awaitable[None]], backoff: Backoff) -> None:
        self._offload = offload
        self._sleep = sleep
        self._backoff = backoff

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        value, _ = await call_with_retries(
            lambda: self._offload(fn, *args, **kwargs),
            retry_if=is_transient,
            backoff=self._backoff,
            sleep=self._sleep,
        )
        return value
