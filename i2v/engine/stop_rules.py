"""Limits that stop a run from sending more work: a failure ratio and a spending budget.

Both only stop *new* submissions; jobs already at the provider finish, and every row
still gets its outcome (rows never sent are ``skipped``, with the reason).

* ``max_failure_ratio``: once ``min_judged`` rows have been worked on (completed or
  failed; skipped rows do not count), a share of failures above the ratio stops the run.
  A run whose rows mostly fail for some reason the pipeline cannot see stops paying.
* ``max_credits``: before each create, the credits already reported, plus the estimate
  of every job still running, plus this job's estimate (:mod:`i2v.api.prices`) must stay
  within the budget. A job's estimate is replaced by what the API reports once it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from i2v.errors import Stopped

#: Rows worked on before a failure ratio is judged: the first few failures prove little.
MIN_JUDGED = 20


@dataclass
class RunPolicy:
    """The run's limits and what it has used of them; one per run, on the engine's loop."""

    max_failure_ratio: float | None = None
    max_credits: float | None = None
    min_judged: int = MIN_JUDGED
    worked: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)
    spent: float = field(default=0.0, init=False)
    committed: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.max_failure_ratio is not None and not 0 <= self.max_failure_ratio <= 1:
            raise ValueError(f"max_failure_ratio must be between 0 and 1, got {self.max_failure_ratio}")
        if self.max_credits is not None and self.max_credits < 0:
            raise ValueError(f"max_credits must not be negative, got {self.max_credits}")

    def reserve(self, estimate: float) -> None:
        """Commit ``estimate`` credits to a create about to be sent, or raise :class:`Stopped`."""
        if self.max_credits is not None and self.spent + self.committed + estimate > self.max_credits:
            raise Stopped(
                f"spending limit: {self.spent + self.committed:,.0f} credits spent or committed, and the next "
                f"job (about {estimate:,.0f}) would pass the limit of {self.max_credits:,.0f}"
            )
        self.committed += estimate

    def settle(self, estimate: float, actual: float | None) -> None:
        """A reserved job ended (or was never made): swap its estimate for what it cost."""
        self.committed -= estimate
        self.spent += estimate if actual is None else actual

    def judge(self, *, failed: bool) -> Stopped | None:
        """Count a row worked on; a :class:`Stopped` when the failures pass the ratio."""
        self.worked += 1
        self.failed += failed
        ratio = self.max_failure_ratio
        if ratio is None or self.worked < self.min_judged or self.failed / self.worked <= ratio:
            return None
        return Stopped(
            f"failure limit: {self.failed} of the {self.worked} rows worked on failed "
            f"({self.failed / self.worked:.0%}, more than {ratio:.0%})"
        )
