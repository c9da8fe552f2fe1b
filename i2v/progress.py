"""Counts of a run as it goes: what the console and the progress artifact show.

Only counters and the first few failures are kept, never a row per row, so a
100,000-row run costs the same few hundred bytes as a 10-row one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from i2v.outcomes import RowOutcome
from i2v.report import credits

#: Failures kept in full for the end-of-run summary; the manifest has the rest.
FIRST_FAILURES = 5


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

    def line(self, *, in_flight: int | None = None) -> str:
        """One line for a console or a log: counts, rate and time left."""
        elapsed = time.monotonic() - self.started
        done = self.done
        total = f"/{self.total}" if self.total is not None else ""
        parts = [
            f"{done}{total} rows",
            f"{self.statuses['completed']} completed",
            f"{self.statuses['skipped']} skipped",
            f"{self.statuses['failed']} failed",
        ]
        if in_flight is not None:
            parts.append(f"{in_flight} in flight")
        if self.credits_used:
            parts.append(f"{credits(self.credits_used)} credits")
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total and rate > 0 and done < self.total:
            parts.append(f"about {_duration((self.total - done) / rate)} left")
        return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
