"""The manifest: parts per shard, assembled in row order, typed Parquet and spreadsheet-safe CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from i2v import manifest
from i2v.outcomes import RowOutcome
from i2v.storage import LocalDestination


def _outcome(index: int, **fields: object) -> RowOutcome:
    values: dict[str, object] = {
        "row_key": f"key{index}",
        "row_index": index,
        "id": f"id{index}",
        "image_url": "https://example.com/x.png",
        "prompt": f"Prompt {index}",
        "model": "alibaba/wan2.5-i2v-preview",
        "route": "universal",
        "params": "{}",
        "status": "completed",
        **fields,
    }
    return RowOutcome(**values)  # type: ignore[arg-type]


def test_parts_assemble_in_row_order_with_nullable_types(tmp_path: Path) -> None:
    """Parts written out of order come back as one table in input order; missing values stay missing."""
    dest = LocalDestination(tmp_path)
    manifest.write_part(dest, "run1", 1, [_outcome(3), _outcome(2, status="failed", error_kind="rejected")])
    manifest.write_part(dest, "run1", 0, [_outcome(1, video_bytes=10, submitted_at=1.7e9), _outcome(0)])
    parts = [manifest.read_part(dest, manifest.part_key("run1", shard)) for shard in (0, 1)]
    written = manifest.assemble(dest, "run1", [part for part in parts if part is not None])
    assert set(written) == {"runs/run1/manifest.parquet", "runs/run1/manifest.csv"}
    frame = pd.read_parquet(tmp_path / "runs" / "run1" / "manifest.parquet")
    assert frame["row_index"].tolist() == [0, 1, 2, 3]
    assert str(frame["video_bytes"].dtype) == "Int64"
    assert frame["video_bytes"].isna().tolist() == [True, False, True, True]
    assert str(frame["retryable"].dtype) == "boolean"
    assert str(frame["submitted_at"].dtype) == "datetime64[us, UTC]"
    assert frame["submitted_at"].iloc[1] == pd.Timestamp(1.7e9, unit="s", tz="UTC")
    back = manifest.read_outcomes(dest, "runs/run1/manifest.parquet")
    assert [o.status for o in back] == ["completed", "completed", "failed", "completed"]
    assert back[1].video_bytes == 10
    assert back[1].submitted_at == 1.7e9


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(tmp_path: Path) -> None:
    """Formulas in ids and prompts get a leading quote in the CSV and stay as written in Parquet."""
    dest = LocalDestination(tmp_path)
    hostile = ['=HYPERLINK("http://x","click")', "+1+1", "-2", "@SUM(A1)", "\tTab", "plain text"]
    outcomes = [_outcome(i, prompt=text, id=text) for i, text in enumerate(hostile)]
    manifest.write_manifest(dest, outcomes, run="r")
    with (tmp_path / "runs" / "r" / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["prompt"] for r in rows] == ["'" + t for t in hostile[:-1]] + ["plain text"]
    assert rows[0]["id"].startswith("'=")
    frame = pd.read_parquet(tmp_path / "runs" / "r" / "manifest.parquet")
    assert frame["prompt"].tolist() == hostile


def test_summary_of_a_stored_manifest_counts_without_loading_rows(tmp_path: Path) -> None:
    """Totals, failure kinds and the first failures come from the stored table."""
    dest = LocalDestination(tmp_path)
    outcomes = [_outcome(i, credits_used=2.0, generation_seconds=float(i)) for i in range(8)]
    outcomes += [_outcome(8 + i, status="failed", error_kind="timeout", error_message=f"slow {i}") for i in range(3)]
    outcomes.append(_outcome(11, status="skipped", error_kind="already_done"))
    manifest.write_manifest(dest, outcomes, run="r")
    summary = manifest.summarize(dest, "runs/r/manifest.parquet")
    assert (summary.total, summary.completed, summary.failed, summary.skipped) == (12, 8, 3, 1)
    assert summary.failures_by_kind == {"timeout": 3}
    assert summary.credits_used == 16.0
    assert [f["row_index"] for f in summary.first_failures] == [8, 9, 10]
