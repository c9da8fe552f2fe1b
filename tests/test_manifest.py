"""The manifest: parts per shard, assembled in row order, typed Parquet and spreadsheet-safe CSV."""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import i2v
from i2v.manifest import run_table as manifest
from i2v.outcomes import COLUMNS, RowOutcome
from i2v.storage.local import LocalDestination


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


def _pandas_dtype(name: str) -> str:
    """The dtype each column had in the frame the schema was once made from with ``pa.Schema.from_pandas``."""
    if name in ("submitted_at", "completed_at"):
        return "datetime64[us, UTC]"
    if name in ("row_index", "submit_attempts", "polls", "video_bytes", "width", "height"):
        return "Int64"
    if name in ("generation_seconds", "duration_s", "fps", "credits_used", "usd_spent"):
        return "Float64"
    return "boolean" if name == "retryable" else "string"


def test_the_hand_made_pandas_metadata_reads_back_as_pandas_own(tmp_path: Path) -> None:
    """A manifest reads back in pandas with the same nullable dtypes and values as with the metadata pandas wrote."""
    frame = pd.DataFrame({name: pd.Series(dtype=_pandas_dtype(name)) for name in COLUMNS})
    theirs = pa.Schema.from_pandas(frame, preserve_index=False)
    assert theirs.equals(manifest.SCHEMA, check_metadata=False)
    outcomes = [
        _outcome(0, video_bytes=10, duration_s=1.5, submitted_at=1.7e9, retryable=True),
        _outcome(1, status="failed", error_kind="timeout", error_message="slow", retryable=False),
        _outcome(2, row_key=None, id=None, model=None, route=None),
    ]
    table = manifest.to_table(outcomes)
    pq.write_table(table, tmp_path / "ours.parquet")
    pq.write_table(table.replace_schema_metadata(theirs.metadata), tmp_path / "theirs.parquet")

    ours_frame = pd.read_parquet(tmp_path / "ours.parquet")
    theirs_frame = pd.read_parquet(tmp_path / "theirs.parquet")
    assert ours_frame.dtypes.astype(str).to_dict() == theirs_frame.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(ours_frame, theirs_frame)
    assert ours_frame.dtypes.astype(str).to_dict() == {name: _pandas_dtype(name) for name in COLUMNS}
    assert ours_frame["video_bytes"].isna().tolist() == [False, True, True]
    assert ours_frame["retryable"].isna().tolist() == [False, False, True]
    assert ours_frame["row_key"].isna().tolist() == [False, False, True]


def test_no_module_outside_the_emulator_imports_pandas_or_numpy() -> None:
    """The pipeline's own modules never import pandas (~45 MB in the flow process) nor numpy."""
    package = Path(i2v.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if "emulator" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("pandas", "numpy")]
    assert offenders == []
    modules = "i2v.manifest.run_table, i2v.manifest.merged, i2v.manifest.videofolder"
    code = f"import sys, {modules}; print('pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
