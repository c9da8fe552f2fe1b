"""Summaries of a run for people: totals, a Markdown report, the failed rows, console lines.

A :class:`Tally` is fed one manifest row at a time while the manifest is assembled, and
keeps only counters, the generation times of completed rows (for percentiles) and the
first failures, so summarising a 100,000-row run does not hold its rows.
"""

from __future__ import annotations

import statistics
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from i2v.api.prices import credits
from i2v.outcomes import RowOutcome

_MESSAGE_WIDTH = 100
#: Failed rows kept for the failed-rows artifact; the manifest has all of them.
KEPT_FAILURES = 100
#: Failed rows the console shows at the end of a run.
SHOWN_FAILURES = 5


@dataclass(frozen=True)
class Summary:
    """Counts and figures for one run."""

    total: int
    completed: int
    failed: int
    skipped: int
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    #: Why rows were skipped: ``already_done``, ``duplicate``, ``stopped``, ...
    skipped_by_kind: dict[str, int] = field(default_factory=dict)
    credits_used: float = 0.0
    video_bytes: int = 0
    generation_p50_s: float | None = None
    generation_p95_s: float | None = None
    wall_s: float | None = None
    #: The first failed rows (``row_index``, ``id``, ``error_kind``, ``retryable``, ``error_message``).
    first_failures: list[dict[str, Any]] = field(default_factory=list)
    #: Where the run's manifest was written.
    manifest_uri: str | None = None
    #: The local folder that took the run's manifest because the destination refused it.
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tally:
    """Accumulates a :class:`Summary` from manifest rows given one at a time."""

    def __init__(self) -> None:
        self._statuses: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._skips: Counter[str] = Counter()
        self._first: list[dict[str, Any]] = []
        self._credits = 0.0
        self._bytes = 0
        self._seconds = array("d")

    def add(self, row: Mapping[str, Any] | RowOutcome) -> None:
        record = row.as_dict() if isinstance(row, RowOutcome) else row
        status = str(record["status"])
        self._statuses[status] += 1
        if status == "completed":
            self._credits += float(record.get("credits_used") or 0.0)
            self._bytes += int(record.get("video_bytes") or 0)
            if record.get("generation_seconds") is not None:
                self._seconds.append(float(record["generation_seconds"]))
        elif status == "skipped":
            self._skips[str(record.get("error_kind") or "unknown")] += 1
        elif status == "failed":
            self._failures[str(record.get("error_kind") or "unknown")] += 1
            if len(self._first) < KEPT_FAILURES:
                self._first.append(
                    {
                        "row_index": record["row_index"],
                        "id": record.get("id") or "",
                        "error_kind": record.get("error_kind") or "",
                        "retryable": "yes" if record.get("retryable") else "no",
                        "error_message": record.get("error_message") or "",
                    }
                )

    def summary(self, *, wall_s: float | None = None) -> Summary:
        seconds = sorted(self._seconds)
        return Summary(
            total=sum(self._statuses.values()),
            completed=self._statuses["completed"],
            failed=self._statuses["failed"],
            skipped=self._statuses["skipped"],
            failures_by_kind=dict(self._failures.most_common()),
            skipped_by_kind=dict(self._skips.most_common()),
            credits_used=round(self._credits, 3),
            video_bytes=self._bytes,
            generation_p50_s=round(statistics.median(seconds), 2) if seconds else None,
            generation_p95_s=round(_percentile(seconds, 0.95), 2) if seconds else None,
            wall_s=round(wall_s, 2) if wall_s is not None else None,
            first_failures=list(self._first),
        )


def markdown(summary: Summary, *, dest_uri: str, manifest_uri: str) -> str:
    """The run's Markdown summary (a Prefect artifact, and readable on its own)."""
    lines = [
        "# Image-to-video run",
        "",
        f"Destination: `{dest_uri}`  ",
        f"Manifest: `{manifest_uri}`",
        "",
        "| rows | completed | skipped | failed | credits used | stored |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {summary.total} | {summary.completed} | {summary.skipped} | {summary.failed} "
        f"| {credits(summary.credits_used)} | {_size(summary.video_bytes)} |",
    ]
    if summary.generation_p50_s is not None:
        lines += ["", f"Generation time: p50 {summary.generation_p50_s}s, p95 {summary.generation_p95_s}s."]
    if summary.wall_s is not None:
        lines += [f"Wall time: {summary.wall_s}s."]
    if summary.failures_by_kind:
        lines += ["", "| failure | rows |", "|---|---:|"]
        lines += [f"| {kind} | {count} |" for kind, count in summary.failures_by_kind.items()]
    return "\n".join(lines) + "\n"


#: Why a row was skipped, in words.
_SKIP_WORDS = {
    "already_done": "already done (video stored by an earlier run)",
    "duplicate": "same work as an earlier row",
    "stopped": "not sent (the run stopped)",
    "claimed_elsewhere": "left to another run",
}


def _skip_words(kind: str) -> str:
    return _SKIP_WORDS.get(kind, f"{kind} earlier, not retried")


def console_summary(summary: Summary, *, manifest_uri: str) -> str:
    """The end of a run on a terminal: totals, failures by kind, the first few failures."""
    totals = f"{summary.total} rows: {summary.completed} completed, {summary.skipped} skipped, {summary.failed} failed"
    if summary.wall_s is not None:
        totals += f" in {summary.wall_s}s"
    lines = [totals]
    if summary.skipped_by_kind:
        reasons = ", ".join(f"{_skip_words(kind)} {count}" for kind, count in summary.skipped_by_kind.items())
        lines.append(f"skipped: {reasons}")
    if summary.credits_used:
        lines.append(f"credits used: {credits(summary.credits_used)}")
    if summary.failures_by_kind:
        lines.append("failures: " + ", ".join(f"{kind} {count}" for kind, count in summary.failures_by_kind.items()))
        shown = summary.first_failures[:SHOWN_FAILURES]
        first = "first failure" if len(shown) == 1 else f"first {len(shown)} failures"
        lines.append(f"{first}:")
        lines += [
            f"  row {f['row_index']} ({f['id'] or '-'}): {_clip(str(f['error_kind']) + ': ' + str(f['error_message']))}"
            for f in shown
        ]
    lines.append(f"manifest: {manifest_uri} (and manifest.csv)")
    if summary.fallback:
        lines.append(
            f"the destination refused the manifest: it is in {summary.fallback}; copy that folder's runs/ into the"
            " destination once it has room, and the next run merges it"
        )
    return "\n".join(lines)


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_WIDTH else text[: _MESSAGE_WIDTH - 1] + "…"


def _percentile(values: list[float], q: float) -> float:
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[index]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
