"""Scripted faults, waiting for the requests they are meant to strike.

Each kind of request (create, fetch, download) is numbered as it arrives. A fault
queued when ``k`` requests of its kind had been seen falls due at request
``k + nth`` and then strikes ``count`` requests in a row. At most one fault strikes a
request, the first queued of those due; the others stay due for the next request. With
``nth=1`` everywhere this is a plain first-in-first-out queue, which is what the
original form of the faults endpoint promised and what tests written against it expect.

A request first *meets* the fault due for it, and the fault is *used* only if it
strikes: an ``after_create`` fault met by a create that never makes a job stays due.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from i2v.emulator.config import FAULT_TARGETS, Fault, FaultTarget


@dataclass(eq=False)
class QueuedFault:
    """A fault in the queue: from which request on it is due, and how many it has left."""

    fault: Fault
    due: int
    left: int


class FaultQueue:
    """Faults waiting for their requests, one queue per kind of request."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._queues: dict[FaultTarget, list[QueuedFault]] = {on: [] for on in FAULT_TARGETS}
        self._seen: dict[FaultTarget, int] = dict.fromkeys(FAULT_TARGETS, 0)
        self.extend(faults)

    def extend(self, faults: Iterable[Fault]) -> None:
        for fault in faults:
            due = self._seen[fault.on] + fault.nth
            self._queues[fault.on].append(QueuedFault(fault, due, fault.count))

    def meet(self, on: FaultTarget) -> QueuedFault | None:
        """Count one more ``on`` request; the fault due for it, if any (not yet used)."""
        self._seen[on] += 1
        queue = self._queues[on]
        if not queue:
            return None
        number = self._seen[on]
        for queued in queue:
            if queued.due <= number:
                return queued
        return None

    def use(self, queued: QueuedFault) -> Fault:
        """Spend one strike of ``queued``; it leaves the queue after its last."""
        queued.left -= 1
        if queued.left <= 0:
            self._queues[queued.fault.on].remove(queued)
        return queued.fault

    def pending(self) -> int:
        """Requests still to be struck, over all kinds."""
        return sum(queued.left for queue in self._queues.values() for queued in queue)
