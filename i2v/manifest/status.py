"""What a destination holds, read from outside any run (``i2v status DEST``).

Its runs (each run's own manifest, summed up), its rows by status in the merged manifest,
what they cost, the rows whose create may have been paid without an answer
(``submit_unknown``), the rows a live run holds now (its claims), and what a plain
``i2v rerun`` of the merged manifest would run and leave. Only reads: one pass over the
merged manifest, one over each run's, one listing of ``runs/`` and of ``claims/``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from i2v.engine.claims import live_claims
from i2v.inputs.from_manifest import (
    COLUMNS,
    RerunPlan,
    Selection,
    add_rows_without_work,
    manifest_rows,
    plan_rows,
)
from i2v.manifest.merged import ROOT, run_manifest_key
from i2v.manifest.run_table import summarize
from i2v.report.summary import Summary, Tally
from i2v.storage.destination import Destination

_UNKNOWN = "submit_unknown"
_COST_COLUMNS = ("credits_used", "usd_spent", "video_bytes", "generation_seconds")


@dataclass(frozen=True)
class RunLine:
    """One run's own manifest, summed up."""

    run: str
    rows: int
    completed: int
    failed: int
    skipped: int
    credits_used: float


@dataclass
class DestinationStatus:
    """What :func:`status` found in one destination."""

    dest: str
    runs: list[RunLine] = field(default_factory=list)
    #: The merged manifest's rows, summed up; None when the destination has none yet.
    rows: Summary | None = None
    usd_spent: float = 0.0
    #: Rows whose create was sent and never answered, by ``row_index``.
    unknown: list[int] = field(default_factory=list)
    #: Rows a live run holds now: run name (or "unknown") → rows.
    claimed: dict[str, int] = field(default_factory=dict)
    #: What a plain ``i2v rerun`` of the merged manifest does; None without one.
    rerun: RerunPlan | None = None

    def as_dict(self) -> dict[str, Any]:
        """The status as plain data."""
        return {
            "destination": self.dest,
            "runs": [asdict(line) for line in self.runs],
            "rows": None if self.rows is None else _rows_dict(self.rows),
            "usd_spent": round(self.usd_spent, 4),
            "unknown_rows": self.unknown,
            "claimed_rows": self.claimed,
            "rerun": None if self.rerun is None else self.rerun.as_dict(),
        }


def status(dest: Destination, *, now: float | None = None) -> DestinationStatus:
    """Read ``dest``'s runs, merged manifest and live claims."""
    found = DestinationStatus(dest.uri)
    for run in _runs(dest):
        summary = summarize(dest, run_manifest_key(run))
        found.runs.append(
            RunLine(run, summary.total, summary.completed, summary.failed, summary.skipped, summary.credits_used)
        )
    held = Counter(run or "unknown" for run in live_claims(dest, now=now).values())
    found.claimed = dict(held.most_common())
    if dest.size(ROOT) is None:
        return found
    tally = Tally()
    spent = [0.0]

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            tally.add(row)
            spent[0] += float(row.get("usd_spent") or 0.0) if row["status"] == "completed" else 0.0
            if row.get("error_kind") == _UNKNOWN:
                found.unknown.append(int(row.get("row_index") or 0))
            yield row

    rows = manifest_rows(dest, ROOT, columns=(*COLUMNS, *_COST_COLUMNS))
    found.rerun = plan_rows(counted(rows), Selection(), manifest=dest.uri_for(ROOT))
    add_rows_without_work(found.rerun, dest)
    found.rows = tally.summary()
    found.usd_spent = spent[0]
    found.unknown.sort()
    return found


def _runs(dest: Destination) -> list[str]:
    """The runs with a manifest of their own, oldest first (run names start with their start time)."""
    names = set()
    for key in dest.list_sizes("runs/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "manifest.parquet":
            names.add(parts[1])
    return sorted(names)


def _rows_dict(summary: Summary) -> Mapping[str, Any]:
    return {
        "total": summary.total,
        "completed": summary.completed,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "failed_by_kind": summary.failures_by_kind,
        "skipped_by_kind": summary.skipped_by_kind,
        "credits_used": summary.credits_used,
        "video_bytes": summary.video_bytes,
    }
