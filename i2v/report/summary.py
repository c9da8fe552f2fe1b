"""Summaries of a run for people: totals, a Markdown report, the failed rows, console lines.

A :class:`Tally` is fed one manifest row at a time while the manifest is assembled, and
keeps only counters, the generation times of completed rows (for percentiles) and the
first failures, so summarising a 100,000-row run does not hold its rows.
"""

from __future__ import annotations

import json
import math
import statistics
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from i2v.api.prices import CREDITS_PER_USD, credits, estimate
from i2v.inputs.comparison import counted
from i2v.outcomes import RowOutcome

_MESSAGE_WIDTH = 100
_CENT = Decimal("0.01")
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
    #: USD the completed rows cost: as the provider reported it, or their credits at 2,000,000 a dollar.
    usd_spent: float = 0.0
    #: What the completed rows should have cost, in credits, by the price table (:mod:`i2v.api.prices`).
    estimated_credits: float = 0.0
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
    #: Rows of the input (``total`` counts (row, model) pairs in a comparison); None: as many as ``total``.
    input_rows: int | None = None
    #: The models a comparison ran rows on, side by side in its ``compare.html``; empty when it compared none.
    models: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunTotals:
    """One run's share of a destination's rows: those whose latest outcome it produced."""

    run: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    credits_used: float = 0.0
    usd_spent: float = 0.0
    estimated_credits: float = 0.0


class Tally:
    """Accumulates a :class:`Summary` from manifest rows given one at a time.

    With ``by_run``, it also keeps each run's counts and costs (:meth:`runs`): a few
    numbers per run, for a destination's rows, whose ``run`` column says which run
    produced each.
    """

    def __init__(self, *, by_run: bool = False) -> None:
        self._statuses: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._skips: Counter[str] = Counter()
        self._first: list[dict[str, Any]] = []
        self._credits = 0.0
        self._usd = 0.0
        self._estimated = 0.0
        self._bytes = 0
        self._seconds = array("d")
        self._by_run: dict[str, list[float]] | None = {} if by_run else None

    def add(self, row: Mapping[str, Any] | RowOutcome) -> None:
        record = row.as_dict() if isinstance(row, RowOutcome) else row
        status = str(record["status"])
        self._statuses[status] += 1
        paid = (0.0, 0.0, 0.0)
        if status == "completed":
            paid = (number(record.get("credits_used")) or 0.0, row_usd(record) or 0.0, row_estimate(record) or 0.0)
            self._credits += paid[0]
            self._usd += paid[1]
            self._estimated += paid[2]
            self._bytes += int(number(record.get("video_bytes")) or 0)
            seconds = number(record.get("generation_seconds"))
            if seconds is not None:
                self._seconds.append(seconds)
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
        if self._by_run is not None:
            counts = self._by_run.setdefault(str(record.get("run") or ""), [0.0] * 7)
            counts[0] += 1
            slot = {"completed": 1, "failed": 2, "skipped": 3}.get(status)
            if slot is not None:
                counts[slot] += 1
            for index, amount in enumerate(paid, start=4):
                counts[index] += amount

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
            usd_spent=round(self._usd, 6),
            estimated_credits=round(self._estimated, 3),
            video_bytes=self._bytes,
            generation_p50_s=round(statistics.median(seconds), 2) if seconds else None,
            generation_p95_s=round(_percentile(seconds, 0.95), 2) if seconds else None,
            wall_s=round(wall_s, 2) if wall_s is not None else None,
            first_failures=list(self._first),
        )

    def runs(self) -> list[RunTotals]:
        """Each run's rows and costs, by run name (runs are named from when they started); empty without ``by_run``."""
        return [
            RunTotals(
                run=run,
                total=int(counts[0]),
                completed=int(counts[1]),
                failed=int(counts[2]),
                skipped=int(counts[3]),
                credits_used=round(counts[4], 3),
                usd_spent=round(counts[5], 6),
                estimated_credits=round(counts[6], 3),
            )
            for run, counts in sorted((self._by_run or {}).items())
        ]


def number(value: Any) -> float | None:
    """A cell as a finite float, or None (missing, NaN, pandas' NA, not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def row_usd(record: Mapping[str, Any]) -> float | None:
    """What a row cost in USD: the provider's figure (``usd_spent``), else its credits at 2,000,000 a dollar."""
    usd = number(record.get("usd_spent"))
    if usd is not None:
        return usd
    spent = number(record.get("credits_used"))
    return None if spent is None else spent / CREDITS_PER_USD


def row_estimate(record: Mapping[str, Any]) -> float | None:
    """What a row's job should cost in credits, by the price table; None without a model or readable params."""
    model = record.get("model")
    if not isinstance(model, str) or not model:
        return None
    try:
        params = json.loads(record.get("params") or "{}")
    except (TypeError, ValueError):
        return None
    if not isinstance(params, dict):
        return None
    try:
        return estimate(model, params).credits
    except (TypeError, ValueError):
        return None


def dollars(amount: float) -> str:
    """USD for people: cents, or "<$0.01" for less than a cent that is not nothing.

    Half a cent rounds up, from the amount as written (0.105 is $0.11), as the report page's
    script rounds it, so that a card and the header agree.
    """
    if amount == 0:
        return "$0.00"
    if 0 < amount < 0.005:
        return "<$0.01"
    return f"${Decimal(repr(amount)).quantize(_CENT, ROUND_HALF_UP):,.2f}"


def cost(spent: float, usd: float, estimated: float | None = None) -> str:
    """Credits and USD, with the estimate beside them when there is one."""
    text = f"{credits(spent)} credits ({dollars(usd)})"
    if estimated is not None:
        text += f"; estimated {credits(estimated)} credits ({dollars(estimated / CREDITS_PER_USD)})"
    return text


def markdown(summary: Summary, *, dest_uri: str, manifest_uri: str) -> str:
    """The run's Markdown summary (a Prefect artifact, and readable on its own)."""
    lines = [
        "# Image-to-video run",
        "",
        f"Destination: `{dest_uri}`  ",
        f"Manifest: `{manifest_uri}`",
        "",
        f"Input: {_counted(summary)}.",
        "",
        "| rows | completed | skipped | failed | credits used | USD | estimated credits (USD) | stored |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary.total} | {summary.completed} | {summary.skipped} | {summary.failed} "
        f"| {credits(summary.credits_used)} | {dollars(summary.usd_spent)} "
        f"| {credits(summary.estimated_credits)} ({dollars(summary.estimated_credits / CREDITS_PER_USD)}) "
        f"| {_size(summary.video_bytes)} |",
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
    totals = f"{_counted(summary)}: {summary.completed} completed, {summary.skipped} skipped, {summary.failed} failed"
    if summary.wall_s is not None:
        totals += f" in {summary.wall_s}s"
    lines = [totals]
    if summary.skipped_by_kind:
        reasons = ", ".join(f"{_skip_words(kind)} {count}" for kind, count in summary.skipped_by_kind.items())
        lines.append(f"skipped: {reasons}")
    if summary.credits_used or summary.usd_spent:
        lines.append("cost: " + cost(summary.credits_used, summary.usd_spent, summary.estimated_credits))
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


def _counted(summary: Summary) -> str:
    """``10 rows``, or ``10 rows × 3 models`` for a comparison."""
    rows = summary.total if summary.input_rows is None else summary.input_rows
    return counted(rows, summary.total, len(summary.models))


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
