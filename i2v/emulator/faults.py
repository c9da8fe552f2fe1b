"""Scripted one-shot faults, consumed in the order they were queued."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from i2v.emulator.config import Fault, FaultTarget


@dataclass
class _Pending:
    fault: Fault
    left: int


class FaultQueue:
    """Faults waiting for their requests, one queue per kind of request."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._queues: dict[FaultTarget, deque[_Pending]] = {
            "create": deque(),
            "fetch": deque(),
            "download": deque(),
        }
        self.extend(faults)

    def extend(self, faults: Iterable[Fault]) -> None:
        for fault in faults:
            self._queues[fault.on].append(_Pending(fault, fault.count))

    def peek(self, on: FaultTarget) -> Fault | None:
        """The fault the next ``on`` request would meet, if any."""
        queue = self._queues[on]
        return queue[0].fault if queue else None

    def take(self, on: FaultTarget) -> Fault | None:
        """Use up one occurrence of the next ``on`` fault and return it."""
        queue = self._queues[on]
        if not queue:
            return None
        head = queue[0]
        head.left -= 1
        if head.left <= 0:
            queue.popleft()
        return head.fault

    def pending(self) -> int:
        """Requests still to be failed, over all kinds."""
        return sum(item.left for queue in self._queues.values() for item in queue)
