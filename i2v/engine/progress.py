"""Counts of a run as it goes: what the console and the progress artifact show.

Only counters and the first few failures are kept, never a row per row, so a
100,000-row run costs the same few hundred bytes as a 10-row one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from i2v.api.prices import credits
from i2v.outcomes import RowOutcome

#: Failures kept in full for the end-of-run summary; the manifest has the rest.
FIRST_FAILURES = 5
#: Set (``extra={PROGRESS_RECORD: True}``) on the periodic progress log record, so a
#: terminal that already draws the counts as a bar can leave the line out.
PROGRESS_RECORD = "i2v_progress"


@dataclass(frozen=True)
class Snapshot:
    """The counts of a run at one moment: what a progress line, bar or artifact shows."""

    total: int | None
    completed: int
    skipped: int
    failed: int
    credits_used: float
    elapsed_s: float
    in_flight: int | None = None

    @property
    def done(self) -> int:
        return self.completed + self.skipped + self.failed

    @property
    def percent(self) -> float:
        """Share of the rows with an outcome, 0 to 100 (0 while the total is unknown)."""
        if not self.total:
            return 0.0
        return min(100.0, 100.0 * self.done / self.total)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate videos complete; None before the first one or once all rows are done.

        Rows skipped or refused as invalid end at once and say nothing about how long the
        rest will take: only completed videos set the pace.
        """
        rate = self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0
        if not self.total or rate <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) / rate

    def counts(self) -> list[str]:
        """The counts by status, then jobs in flight and credits when there are any."""
        parts = [f"{self.completed} completed", f"{self.skipped} skipped", f"{self.failed} failed"]
        if self.in_flight is not None:
            parts.append(f"{self.in_flight} in flight")
        if self.credits_used:
            parts.append(f"{credits(self.credits_used)} credits")
        return parts

    def rows(self) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        return f"{self.done}{total} rows"

    def time_left(self) -> str | None:
        eta = self.eta_s
        return None if eta is None else f"about {duration(eta)} left"

    def line(self) -> str:
        """One line for a console or a log: counts, credits and time left."""
        left = self.time_left()
        return ", ".join([self.rows(), *self.counts(), *([left] if left else [])])


@dataclass
class Progress:
    """Live counts of one run."""

    total: int | None = None
    started: float = field(default_factory=time.monotonic)
    statuses: Counter[str] = field(default_factory=Counter)
    failures_by_kind: Counter[str] = field(default_factory=Counter)
    first_failures: list[RowOutcome] = field(default_factory=list)
    credits_used: float = 0.0
    #: Rows read from the input whose outcomes are not yet written to a manifest part.
    rows_held: int = 0
    peak_rows_held: int = 0

    @property
    def done(self) -> int:
        return sum(self.statuses.values())

    def add(self, outcome: RowOutcome) -> None:
        """Count one row's final outcome."""
        self.statuses[outcome.status] += 1
        if outcome.status == "completed":
            self.credits_used += outcome.credits_used or 0.0
        if outcome.status == "failed":
            self.failures_by_kind[outcome.error_kind or "unknown"] += 1
            if len(self.first_failures) < FIRST_FAILURES:
                self.first_failures.append(outcome)

    def hold(self, rows: int) -> None:
        """``rows`` more rows are in memory (read, outcome not yet written out)."""
        self.rows_held += rows
        self.peak_rows_held = max(self.peak_rows_held, self.rows_held)

    def let_go(self, rows: int) -> None:
        self.rows_held -= rows

    def snapshot(self, *, in_flight: int | None = None) -> Snapshot:
        """The counts now; safe to take from another thread than the one counting."""
        statuses = self.statuses
        return Snapshot(
            total=self.total,
            completed=statuses.get("completed", 0),
            skipped=statuses.get("skipped", 0),
            failed=statuses.get("failed", 0),
            credits_used=self.credits_used,
            elapsed_s=time.monotonic() - self.started,
            in_flight=in_flight,
        )

    def line(self, *, in_flight: int | None = None) -> str:
        """One line for a console or a log: counts, credits and time left."""
        return self.snapshot(in_flight=in_flight).line()


def duration(seconds: float) -> str:
    """A span for people: seconds, minutes or hours as fits."""
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
