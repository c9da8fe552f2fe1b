"""The destination's merged manifest: latest outcome per piece of work, attempts, concurrent runs."""

from __future__ import annotations

import contextlib
import csv
import json
import random
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from i2v.engine.records import read_record, record_key
from i2v.manifest import merged
from i2v.manifest import run_table as manifest
from i2v.outcomes import RowOutcome
from i2v.storage.destination import Destination
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination


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
    included = merged.included_runs(dest)
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


# --- the streaming merge against the in-memory one ------------------------------------------------


def _reference_root(dest: LocalDestination) -> pa.Table:
    """What the in-memory merge (whole tables, decided in pandas) makes of the destination as it is now."""
    root, included = None, []
    path = dest.root / "manifest.parquet"
    if path.exists():
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        if b"i2v.runs" in meta:
            root, included = manifest.conform(table, merged.MERGED_SCHEMA), json.loads(meta[b"i2v.runs"])
    runs = sorted(p.parent.name for p in (dest.root / "runs").glob("*/manifest.parquet"))
    runs = [run for run in runs if run not in included]
    known = {*included, *runs}
    tables = [manifest.conform(pq.read_table(dest.root / merged.run_manifest_key(run))) for run in runs]
    return _reference_merge(root, [_reference_recorded(dest, table, known) for table in tables])


def _reference_merge(root: pa.Table | None, runs: list[pa.Table]) -> pa.Table:
    tables = [root] if root is not None else []
    tables += [_reference_attempts(table) for table in runs]
    whole = pa.concat_tables(tables)
    rows = pd.DataFrame(
        {
            "row_key": whole.column("row_key").to_pandas(),
            "status": whole.column("status").to_pandas(),
            "attempts": whole.column("attempts").fill_null(0).to_pandas(),
        }
    )
    rows["_order"] = range(len(rows))
    rows = rows[rows["row_key"].notna()]
    attempts = rows.groupby("row_key", sort=False)["attempts"].sum()
    first_seen = rows.drop_duplicates("row_key", keep="first").set_index("row_key")["_order"]
    acted = rows[rows["status"].isin(["completed", "failed"])].drop_duplicates("row_key", keep="last")
    anything = rows.drop_duplicates("row_key", keep="last")
    best = pd.concat([acted, anything]).drop_duplicates("row_key", keep="first")
    best = best.assign(_first=best["row_key"].map(first_seen)).sort_values("_first")
    chosen = whole.take(pa.array(best["_order"].to_numpy()))
    totals = pa.array(best["row_key"].map(attempts).to_numpy(), pa.int64())
    return chosen.set_column(chosen.schema.get_field_index("attempts"), "attempts", totals)


def _reference_attempts(table: pa.Table) -> pa.Table:
    if table.schema.equals(merged.MERGED_SCHEMA):
        return table
    tried = pc.cast(pc.not_equal(table.column("status"), "skipped"), pa.int64())
    return manifest.conform(table.append_column("attempts", tried), merged.MERGED_SCHEMA)


def _reference_recorded(dest: LocalDestination, table: pa.Table, runs: set[str]) -> pa.Table:
    table = _reference_attempts(table)
    kind = table.column("error_kind")
    pointing = pc.and_kleene(
        pc.and_kleene(pc.equal(table.column("status"), "skipped"), pc.is_valid(table.column("row_key"))),
        pc.and_kleene(pc.is_valid(kind), pc.invert(pc.is_in(kind, pa.array(["duplicate", "stopped"])))),
    )
    earlier = []
    for key in pc.unique(table.filter(pc.fill_null(pointing, False)).column("row_key")).to_pylist():
        record = read_record(dest, str(key))
        if record is None or record.status not in ("completed", "failed"):
            continue
        row = asdict(record)
        row["attempts"] = 0 if record.run in runs else 1
        for name in ("submitted_at", "completed_at"):
            if row[name] is not None:
                row[name] = datetime.fromtimestamp(row[name], UTC)
        earlier.append(row)
    if not earlier:
        return table
    return pa.concat_tables([pa.Table.from_pylist(earlier, schema=merged.MERGED_SCHEMA), table])


def _root_table(dest: Destination) -> pa.Table:
    with dest.local_file("manifest.parquet") as path:
        assert path is not None
        return pq.read_table(path).replace_schema_metadata(None)


def _assert_same(actual: pa.Table, expected: pa.Table) -> None:
    expected = expected.replace_schema_metadata(None)
    assert actual.schema.equals(expected.schema)
    assert actual.num_rows == expected.num_rows
    assert actual.to_pylist() == expected.to_pylist()


def _record(dest: Destination, outcome: RowOutcome) -> RowOutcome:
    """Write ``outcome`` as its key's record, as the engine does when a row finishes; returns it."""
    assert outcome.row_key is not None
    dest.put_bytes(record_key(outcome.row_key), outcome.to_json().encode(), "application/json")
    return outcome


def _first_run(dest: Destination, run: str, count: int) -> list[RowOutcome]:
    """A run of ``count`` rows: mostly completed, some failures that may pass and some that may not."""
    outcomes = []
    for index in range(count):
        key = f"k{index:04d}"
        if index % 7 == 3:
            outcome = _outcome(key, index, "failed", run=run, error_kind="timeout", retryable=True)
        elif index % 11 == 5:
            outcome = _outcome(key, index, "failed", run=run, error_kind="rejected", retryable=False)
        elif index % 29 == 13:
            outcomes.append(_outcome(None, index, "failed", run=run, error_kind="invalid_input"))  # type: ignore[arg-type]
            continue
        else:
            outcome = _outcome(key, index, "completed", run=run, video_bytes=index, submitted_at=1.7e9 + index)
        outcomes.append(_record(dest, outcome))
    manifest.write_manifest(dest, outcomes, run=run)
    return outcomes


def _shuffled_rerun(dest: Destination, run: str, first: list[RowOutcome], new: int, seed: int) -> None:
    """The same rows in another order, as a rerun reports them, then ``new`` rows of new work."""
    rows = [o for o in first if o.row_key is not None]
    random.Random(seed).shuffle(rows)
    outcomes = []
    for index, earlier in enumerate(rows):
        if earlier.status == "completed":
            outcome = replace(earlier, row_index=index, status="skipped", error_kind="already_done", run=run)
        elif earlier.error_kind == "rejected":
            outcome = replace(earlier, row_index=index, status="skipped", retryable=False, run=run)
        elif index % 2:
            outcome = _record(dest, replace(earlier, row_index=index, status="completed", error_kind=None, run=run))
        else:
            outcome = _record(dest, replace(earlier, row_index=index, polls=9, run=run))
        outcomes.append(outcome)
    for number in range(new):
        key, index = f"n{number:04d}", len(outcomes)
        status = "skipped" if number % 5 == 0 else "completed"
        outcome = _outcome(key, index, status, run=run, error_kind="stopped" if status == "skipped" else None)
        outcomes.append(_record(dest, outcome) if status == "completed" else outcome)
    outcomes.append(replace(outcomes[0], row_index=len(outcomes), status="skipped", error_kind="duplicate"))
    manifest.write_manifest(dest, outcomes, run=run)


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> int:
    """Row groups of 16 rows, merge chunks of 37 and record batches of 10: every boundary is crossed."""
    monkeypatch.setattr(manifest, "ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(merged, "CHUNK_ROWS", 37)
    monkeypatch.setattr(merged, "RECORDS_BATCH", 10)
    return 16


def test_a_shuffled_rerun_merges_as_the_in_memory_merge_did(tmp_path: Path, small_groups: int) -> None:
    """Winners out of every source's order (records and the rerun's own rows) give the same root, row for row."""
    dest = LocalDestination(tmp_path)
    first = _first_run(dest, "r1", 300)
    expected = _reference_root(dest)
    assert merged.merge(dest) == ["r1"]
    _assert_same(_root_table(dest), expected)
    layout = pq.ParquetFile(tmp_path / "manifest.parquet").metadata
    assert layout.num_row_groups > 10
    assert max(layout.row_group(g).num_rows for g in range(layout.num_row_groups)) <= small_groups

    _shuffled_rerun(dest, "r2", first, new=40, seed=3)
    expected = _reference_root(dest)
    assert merged.merge(dest) == ["r1", "r2"]
    actual = _root_table(dest)
    _assert_same(actual, expected)
    by_key = {row["row_key"]: row for row in actual.to_pylist()}
    assert (by_key["k0000"]["status"], by_key["k0000"]["run"]) == ("completed", "r1")
    assert {row["attempts"] for row in actual.to_pylist()} == {0, 1, 2}, "stopped rows: none; retried ones: two"


def test_runs_merged_together_span_row_groups_and_chunks(tmp_path: Path, small_groups: int) -> None:
    """Several new runs at once, appended and rerun rows, many row groups: the in-memory merge's root."""
    dest = LocalDestination(tmp_path)
    first = _first_run(dest, "r1", 200)
    _shuffled_rerun(dest, "r2", first, new=60, seed=5)
    _shuffled_rerun(dest, "r3", first[50:], new=10, seed=8)
    expected = _reference_root(dest)
    assert merged.merge(dest) == ["r1", "r2", "r3"]
    _assert_same(_root_table(dest), expected)
    frame = pd.read_parquet(tmp_path / "manifest.parquet")
    csv_rows = list(csv.DictReader((tmp_path / "manifest.csv").open(newline="")))
    assert [row["row_key"] for row in csv_rows] == frame["row_key"].tolist()
    assert [int(row["attempts"]) for row in csv_rows] == frame["attempts"].tolist()


def test_rows_a_crashed_run_recorded_come_from_their_records(
    tmp_path: Path, small_groups: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that left only records: a later run's skips pick up its outcomes, counted as attempts."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dest = LocalDestination(tmp_path / "dest")
    crashed = [
        _record(dest, _outcome(f"c{i:03d}", i, "completed" if i % 4 else "failed", run="crashed", video_bytes=i))
        for i in range(45)
    ]
    later = [
        replace(o, row_index=n, status="skipped", run="r2", error_kind="already_done" if o.video_bytes else "timeout")
        for n, o in enumerate(reversed(crashed))
    ]
    later.append(_outcome("c999", 45, "skipped", run="r2", error_kind="already_done"))  # no record: kept as is
    manifest.write_manifest(dest, later, run="r2")
    expected = _reference_root(dest)
    assert merged.merge(dest) == ["r2"]
    actual = _root_table(dest)
    _assert_same(actual, expected)
    rows = actual.to_pylist()
    assert [row["row_key"] for row in rows] == [o.row_key for o in later]
    assert {row["run"] for row in rows[:-1]} == {"crashed"}
    assert [row["attempts"] for row in rows] == [1] * 45 + [0]
    assert not list(scratch.iterdir()), "the records' file and the files uploaded are temporary"


def test_records_of_merged_and_of_crashed_work_shuffled_together(tmp_path: Path, small_groups: int) -> None:
    """A rerun skipping rows of the root and rows only a crashed run did, in any order: the in-memory merge's root."""
    dest = LocalDestination(tmp_path)
    first = [o for o in _first_run(dest, "r1", 60) if o.row_key is not None]
    merged.merge(dest)
    crashed = [_record(dest, _outcome(f"c{i:03d}", i, "completed", run="crashed", video_bytes=i)) for i in range(40)]
    mixed = first + crashed
    random.Random(9).shuffle(mixed)
    later = [
        replace(o, row_index=n, status="skipped", run="r2", error_kind=o.error_kind or "already_done")
        for n, o in enumerate(mixed)
    ]
    manifest.write_manifest(dest, later, run="r2")
    expected = _reference_root(dest)
    assert merged.merge(dest) == ["r1", "r2"]
    actual = _root_table(dest)
    _assert_same(actual, expected)
    keys = [row["row_key"] for row in actual.to_pylist()]
    assert keys == [o.row_key for o in first] + [o.row_key for o in mixed if o.run == "crashed"]


def test_merged_on_s3_as_in_a_folder(s3_client: Any, bucket: str, tmp_path: Path, small_groups: int) -> None:
    """On S3 the manifests are read from temporary copies, removed after: the same root as a local folder's."""
    spool = tmp_path / "spool"
    spool.mkdir()
    s3 = S3Destination(s3_client, bucket, "sets/merged", spool_dir=spool)
    local = LocalDestination(tmp_path / "local")
    for dest in (s3, local):
        first = _first_run(dest, "r1", 120)
        merged.merge(dest)
        _shuffled_rerun(dest, "r2", first, new=20, seed=4)
        assert merged.merge(dest) == ["r1", "r2"]
    _assert_same(_root_table(s3), _root_table(local))
    assert merged.included_runs(s3) == ["r1", "r2"]
    with s3.local_file("no/such.parquet") as missing:
        assert missing is None
    assert not list(spool.iterdir()), "no temporary copy is left behind"
    text = s3_client.get_object(Bucket=bucket, Key="sets/merged/manifest.csv")["Body"].read().decode()
    assert text == (tmp_path / "local" / "manifest.csv").read_bytes().decode()


class _CountingFolder(LocalDestination):
    """A folder that counts whole-object reads and tail reads by key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.whole: list[str] = []
        self.tails: list[str] = []

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path | None]:
        self.whole.append(key)
        with super().local_file(key) as path:
            yield path

    def get_tail(self, key: str, size: int) -> bytes | None:
        self.tails.append(key)
        return super().get_tail(key, size)


def test_a_merge_with_nothing_new_reads_only_the_roots_footer(tmp_path: Path) -> None:
    """Once the root includes every run, merging again (and the last round of every merge) fetches no manifest."""
    dest = _CountingFolder(tmp_path)
    manifest.write_manifest(dest, [_outcome("k1", 0, "completed", run="r1")], run="r1")
    assert merged.merge(dest) == ["r1"]
    assert dest.whole.count(merged.ROOT) == 1, "the root is fetched once, in the round that merged r1"
    dest.whole.clear()
    assert merged.merge(dest) == ["r1"]
    assert merged.included_runs(dest) == ["r1"]
    assert dest.whole == []
    assert dest.tails == [merged.ROOT] * 4


def test_a_footer_longer_than_the_first_read_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first tail read shorter than the footer is followed by one of the footer's size."""
    dest = _CountingFolder(tmp_path)
    manifest.write_manifest(dest, [_outcome("k1", 0, "completed", run="r1")], run="r1")
    merged.merge(dest)
    dest.tails.clear()
    dest.whole.clear()
    monkeypatch.setattr(manifest, "_FOOTER_GUESS", 16)
    assert merged.included_runs(dest) == ["r1"]
    assert dest.tails == [merged.ROOT, merged.ROOT]
    assert dest.whole == []


def test_a_root_replaced_between_footer_reads_is_read_from_its_newer_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The footer length and the footer always come from one read, whichever version it saw."""
    older, newer = LocalDestination(tmp_path / "older"), LocalDestination(tmp_path / "newer")
    for dest, runs in ((older, ["r1"]), (newer, ["r1", "r2"])):
        for run in runs:
            manifest.write_manifest(dest, [_outcome(f"k-{run}", 0, "completed", run=run)], run=run)
        merged.merge(dest)

    class Replaced(LocalDestination):
        """The root is replaced by a newer one right after its first tail is read."""

        def get_tail(self, key: str, size: int) -> bytes | None:
            tail = super().get_tail(key, size)
            (self.root / merged.ROOT).write_bytes((newer.root / merged.ROOT).read_bytes())
            return tail

    monkeypatch.setattr(manifest, "_FOOTER_GUESS", 16)
    assert merged.included_runs(Replaced(older.root)) == ["r1", "r2"]


def test_a_root_that_is_not_parquet_is_an_error_not_an_empty_manifest(tmp_path: Path) -> None:
    """A damaged root fails loudly, as reading the whole object would, rather than passing for no runs."""
    dest = LocalDestination(tmp_path)
    dest.put_bytes(merged.ROOT, b"not a parquet file at all", "application/octet-stream")
    with pytest.raises(pa.ArrowInvalid):
        merged.included_runs(dest)
