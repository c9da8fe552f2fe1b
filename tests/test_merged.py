"""The destination's merged manifest: latest outcome per piece of work, attempts, concurrent runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from i2v import manifest, merged
from i2v.outcomes import RowOutcome
from i2v.storage import LocalDestination


def _outcome(key: str, index: int, status: str, **fields: object) -> RowOutcome:
    values: dict[str, object] = {
        "row_key": key,
        "row_index": index,
        "id": key,
        "image_url": "https://example.com/x.png",
        "prompt": f"Prompt {key}",
        "model": "alibaba/wan2.5-i2v-preview",
        "route": "universal",
        "params": "{}",
        "status": status,
        **fields,
    }
    return RowOutcome(**values)  # type: ignore[arg-type]


def test_later_runs_win_but_a_skip_never_hides_what_happened(tmp_path: Path) -> None:
    """A retried failure becomes completed; an already-done skip keeps the earlier completion; attempts count runs."""
    dest = LocalDestination(tmp_path)
    manifest.write_manifest(
        dest,
        [
            _outcome("a", 0, "completed", run="r1", video_bytes=10),
            _outcome("b", 1, "failed", run="r1", error_kind="timeout", retryable=True),
            _outcome("c", 2, "failed", run="r1", error_kind="rejected", retryable=False),
            _outcome(None, 3, "failed", error_kind="invalid_input"),  # type: ignore[arg-type]
        ],
        run="r1",
    )
    manifest.write_manifest(
        dest,
        [
            _outcome("a", 0, "skipped", run="r2", error_kind="already_done"),
            _outcome("b", 1, "completed", run="r2", video_bytes=20),
            _outcome("c", 2, "skipped", run="r2", error_kind="rejected"),
            _outcome("d", 3, "completed", run="r2"),
        ],
        run="r2",
    )
    assert merged.merge(dest) == ["r1", "r2"]
    frame = pd.read_parquet(tmp_path / "manifest.parquet")
    rows = {r["row_key"]: r for r in frame.to_dict("records")}
    assert list(frame["row_key"]) == ["a", "b", "c", "d"], "invalid rows have no key and are not work"
    assert (rows["a"]["status"], rows["a"]["run"], rows["a"]["attempts"]) == ("completed", "r1", 1)
    assert (rows["b"]["status"], rows["b"]["run"], rows["b"]["attempts"]) == ("completed", "r2", 2)
    assert (rows["c"]["status"], rows["c"]["attempts"]) == ("failed", 1)
    assert rows["d"]["attempts"] == 1
    text = (tmp_path / "manifest.csv").read_text()
    assert text.splitlines()[0].endswith(",attempts")
    assert merged.merge(dest) == ["r1", "r2"], "nothing new: nothing to do"


def test_two_runs_finishing_together_both_land_in_the_merged_manifest(tmp_path: Path) -> None:
    """Runs that merge at the same moment, many times over, never lose each other's rows."""
    dest = LocalDestination(tmp_path)
    runs = [f"run{i:02d}" for i in range(8)]
    for number, run in enumerate(runs):
        manifest.write_manifest(dest, [_outcome(f"k{number}", 0, "completed", run=run)], run=run)
    barrier = threading.Barrier(len(runs))

    def finish() -> None:
        barrier.wait()
        merged.merge(dest)

    threads = [threading.Thread(target=finish) for _ in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    included = merged.read_root(dest)[1]
    assert included == runs
    frame = pd.read_parquet(tmp_path / "manifest.parquet")
    assert sorted(frame["row_key"]) == [f"k{i}" for i in range(8)]


def drop_mismatch(path: Path) -> None:
    """Rewrite a manifest without its ``mismatch`` column, metadata kept, as versions before it wrote them."""
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["mismatch"]).replace_schema_metadata(table.schema.metadata), path)


def test_manifests_from_before_the_mismatch_column_merge_with_new_ones(tmp_path: Path) -> None:
    """A run table, part and root lacking ``mismatch`` read as empty notes; a new run's notes land in the root."""
    dest = LocalDestination(tmp_path)
    manifest.write_manifest(dest, [_outcome("a", 0, "completed", run="r1")], run="r1")
    drop_mismatch(tmp_path / "runs" / "r1" / "manifest.parquet")
    assert merged.merge(dest) == ["r1"]
    drop_mismatch(tmp_path / "manifest.parquet")
    manifest.write_part(dest, "r2", 0, [_outcome("b", 0, "completed", run="r2", mismatch="aspect 16:9 asked, 1:1 got")])
    drop_mismatch(tmp_path / manifest.part_key("r2", 0))
    part = manifest.read_part(dest, manifest.part_key("r2", 0))
    assert part is not None
    assert part.column("mismatch").to_pylist() == [None]
    manifest.write_manifest(
        dest, [_outcome("b", 0, "completed", run="r2", mismatch="aspect 16:9 asked, 1:1 got")], run="r2"
    )

    assert merged.merge(dest) == ["r1", "r2"]
    frame = pd.read_parquet(tmp_path / "manifest.parquet")
    assert frame["mismatch"].isna().tolist() == [True, False]
    assert frame["mismatch"].iloc[1] == "aspect 16:9 asked, 1:1 got"
    assert str(frame["mismatch"].dtype) == "string"
    assert "mismatch" in (tmp_path / "manifest.csv").read_text().splitlines()[0].split(",")
