"""Which of a run's identical rows does the work when several shards hold one.

Shards of a run overlap, and a later shard's row can reach the engine before an earlier
shard's row with the same key. Rows announce themselves when their shard reads them; of
rows with one key, the earliest announced claims the work and the later ones wait for
it (then share its outcome). When every shard runs in this process they announce in
shard order, so "earliest" means the earliest in the input.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from i2v.inputs.row import Row

#: How long a row waits for an earlier identical row to claim the work before it does.
EARLIER_ROW_WAIT_S = 120.0


class RowOrder:
    """Announced rows by key, and the order in which shards announce them."""

    def __init__(self) -> None:
        # Rows announced by the shards under way, by key, that have not claimed their key yet.
        self._announced: dict[str, dict[int, asyncio.Event]] = {}
        # Set by in_shard_order: shard k announces its rows only after shard k-1 has.
        self._shards_in_order = False
        self._shards_announced: dict[int, asyncio.Event] = {}

    def announce(self, rows: Sequence[Row]) -> None:
        """Rows about to be worked on: of rows with the same key, the earliest is the one generated."""
        for row in rows:
            self._announced.setdefault(row.key, {}).setdefault(row.index, asyncio.Event())

    def in_shard_order(self) -> None:
        """Every shard of the run works in this process: they announce their rows in order."""
        self._shards_in_order = True

    async def shard_turn(self, index: int) -> None:
        """Wait, when shards are ordered, until the shard before ``index`` has announced its rows."""
        if self._shards_in_order and index > 0:
            await self._shard_event(index - 1).wait()

    def shard_announced(self, index: int) -> None:
        """Shard ``index`` has announced its rows (or never will: it failed before)."""
        self._shard_event(index).set()
        self._shards_announced.pop(index - 1, None)

    def withdraw(self, rows: Sequence[Row]) -> None:
        """Rows that will not claim their key (their batch or shard ended): nobody waits for them."""
        for row in rows:
            self._claimed(row.key, row.index)

    async def take_turn(self, row: Row) -> None:
        """Wait while an earlier announced row with the same key has yet to claim it; then claim it."""
        if row.key not in self._announced:
            return
        while True:
            waiting = self._announced.get(row.key, {})
            earlier = [index for index in waiting if index < row.index]
            if not earlier:
                break
            # A bound, so that an earlier row lost without a trace (its batch never ran)
            # cannot hold this one forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EARLIER_ROW_WAIT_S):
                    await waiting[min(earlier)].wait()
                continue
            for index in earlier:
                self._claimed(row.key, index)
        self._claimed(row.key, row.index)

    def _shard_event(self, index: int) -> asyncio.Event:
        return self._shards_announced.setdefault(index, asyncio.Event())

    def _claimed(self, key: str, index: int) -> None:
        waiting = self._announced.get(key)
        if waiting is None:
            return
        event = waiting.pop(index, None)
        if event is not None:
            event.set()
        if not waiting:
            del self._announced[key]
