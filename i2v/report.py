"""Summaries of a run for people: a Markdown report, a failed-rows table, a console table."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from i2v.outcomes import RowOutcome

_MESSAGE_WIDTH = 70


@dataclass(frozen=True)
class Summary:
    """Counts and figures for one run."""

    total: int
    completed: int
    failed: int
    skipped: int
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    credits_used: float = 0.0
    video_bytes: int = 0
    generation_p50_s: float | None = None
    generation_p95_s: float | None = None
    wall_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(outcomes: Sequence[RowOutcome], *, wall_s: float | None = None) -> Summary:
    """Count outcomes by status and failure kind; total credits, bytes and generation times."""
    statuses = Counter(o.status for o in outcomes)
    failures = Counter(o.error_kind or "unknown" for o in outcomes if o.status == "failed")
    fresh = [o for o in outcomes if o.status == "completed"]
    seconds = sorted(o.generation_seconds for o in fresh if o.generation_seconds is not None)
    return Summary(
        total=len(outcomes),
        completed=statuses["completed"],
        failed=statuses["failed"],
        skipped=statuses["skipped"],
        failures_by_kind=dict(failures.most_common()),
        credits_used=round(sum(o.credits_used or 0.0 for o in fresh), 3),
        video_bytes=sum(o.video_bytes or 0 for o in fresh),
        generation_p50_s=round(statistics.median(seconds), 2) if seconds else None,
        generation_p95_s=round(_percentile(seconds, 0.95), 2) if seconds else None,
        wall_s=round(wall_s, 2) if wall_s is not None else None,
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
        f"| {summary.credits_used:g} | {_size(summary.video_bytes)} |",
    ]
    if summary.generation_p50_s is not None:
        lines += ["", f"Generation time: p50 {summary.generation_p50_s}s, p95 {summary.generation_p95_s}s."]
    if summary.wall_s is not None:
        lines += [f"Wall time: {summary.wall_s}s."]
    if summary.failures_by_kind:
        lines += ["", "| failure | rows |", "|---|---:|"]
        lines += [f"| {kind} | {count} |" for kind, count in summary.failures_by_kind.items()]
    return "\n".join(lines) + "\n"


def failed_rows(outcomes: Sequence[RowOutcome]) -> list[dict[str, Any]]:
    """One dict per failed row, for a table artifact."""
    return [
        {
            "row_index": o.row_index,
            "id": o.id or "",
            "error_kind": o.error_kind or "",
            "retryable": "yes" if o.retryable else "no",
            "error_message": o.error_message or "",
        }
        for o in sorted(outcomes, key=lambda o: o.row_index)
        if o.status == "failed"
    ]


def console_table(outcomes: Sequence[RowOutcome], summary: Summary) -> str:
    """A plain-text table of every row and the totals, for terminals."""
    header = ("row", "id", "status", "detail")
    body = [
        (str(o.row_index), (o.id or "-")[:24], o.status, _detail(o))
        for o in sorted(outcomes, key=lambda o: o.row_index)
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    rule = "  ".join("-" * w for w in widths)
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    lines.insert(1, rule)
    totals = f"{summary.total} rows: {summary.completed} completed, {summary.skipped} skipped, {summary.failed} failed"
    if summary.wall_s is not None:
        totals += f" in {summary.wall_s}s"
    return "\n".join([*lines, "", totals])


def _detail(o: RowOutcome) -> str:
    if o.status == "failed":
        text = f"{o.error_kind}: {o.error_message}"
    elif o.duration_s is not None:
        text = f"{o.duration_s:g}s {o.width}x{o.height} {_size(o.video_bytes or 0)}"
        if o.status == "skipped":
            text += f" ({o.error_kind})"
    else:
        text = o.error_message or ""
    return text if len(text) <= _MESSAGE_WIDTH else text[: _MESSAGE_WIDTH - 1] + "…"


def _percentile(values: Sequence[float], q: float) -> float:
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[index]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
