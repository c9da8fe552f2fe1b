"""Blocking work (storage calls, decoding) run off the event loop, in a bounded pool.

The engine runs every row as a coroutine on one event loop. boto3, local file writes
and PyAV block, so they go through :class:`Offload`: a small, fixed thread pool shared
by the run. Threads serve short calls; no job ever waits in one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, Protocol, TypeVar

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
