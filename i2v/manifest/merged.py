"""The destination's merged manifest: one row per piece of work ever submitted there.

Every run writes its own table, ``runs/<run>/manifest.parquet``, one row per input row.
The root ``manifest.parquet`` and ``manifest.csv`` are the destination's current state:
one row per distinct row key, its latest outcome, how many runs ``attempts`` it, and the
``run`` that produced it. A later run's outcome replaces an earlier one, except that a
row it merely skipped (already done, duplicate, stopped) never hides what an earlier run
did to it.

A run that crashed wrote no table of its own, but every outcome it reached is in the
destination's records (:mod:`i2v.engine.records`): when a later run merely skips a row whose
work an earlier run did (already done, or failed for good), the merge takes that
earlier outcome from the row's record, so a crash never leaves a hole in the manifest.

Two runs may finish at the same time in one destination, and no lock guards the root:
the root records which runs it includes (in its Parquet metadata), and a run that has
written it lists the runs again and merges once more if one appeared meanwhile. That
check reads the root's footer only (:func:`i2v.manifest.run_table.read_schema`), not the root. The
last run to finish therefore leaves a root that includes every run written before it
looked, and a crash leaves no lock behind.

Memory does not grow with the destination beyond a few numbers per row key. The root
and each new run's table are read from local files; which row wins is decided on their
row key, status and attempts alone, a batch at a time (:mod:`i2v.manifest.merge_winners`); the winners
are then gathered :data:`CHUNK_ROWS` at a time, a row group at a time
(:mod:`i2v.manifest.parquet_rows`), and streamed into the new root. Rows taken from records are
written to a temporary Parquet file on the way, read like one more run's table.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from i2v.engine.records import read_record
from i2v.manifest import run_table as manifest
from i2v.manifest.merge_winners import DONE_SOMETHING, Decision, as_text, give_back
from i2v.manifest.parquet_rows import Source, gather
from i2v.manifest.run_table import SCHEMA
from i2v.storage.destination import Destination

ROOT = "manifest.parquet"
ROOT_CSV = "manifest.csv"
_RUNS_META = b"i2v.runs"
_RUN_MANIFEST = re.compile(r"^runs/([^/]+)/manifest\.parquet$")
#: Skips that say nothing about the work itself: the row repeated another, or was never reached.
_ONLY_POINTERS = ("duplicate", "stopped", "claimed_elsewhere")
#: Rows of the merged manifest gathered and written at a time.
CHUNK_ROWS = 4096
#: Records read before they are written to the records' file.
RECORDS_BATCH = 1024

MERGED_SCHEMA = SCHEMA.append(pa.field("attempts", pa.int64()))


def run_manifest_key(run: str) -> str:
    """Where a run's own manifest lives."""
    return f"runs/{run}/manifest.parquet"


def merge(dest: Destination, *, max_rounds: int = 20) -> list[str]:
    """Bring the root manifest up to date with every run's table; returns the runs it includes."""
    included: list[str] = []
    for _ in range(max_rounds):
        listed = _run_manifests(dest)
        # Most rounds find nothing new (the last one always does): the root's footer says so
        # without fetching the root.
        in_footer = included_runs(dest)
        if in_footer is not None and set(listed) <= set(in_footer):
            return in_footer
        with contextlib.ExitStack() as stack:
            root = _open(stack, dest, ROOT)
            runs_in_root = None if root is None else runs_in(root)
            # A root written before merging existed is one run's table, merged like one.
            included = runs_in_root or []
            runs = sorted(key for key in listed if key not in included)
            if not runs:
                return included
            known = {*included, *runs}
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="i2v-merge-")))
            decision = Decision()
            sources = []
            if root is not None and runs_in_root is not None:
                for batch in _batches(root, ["row_key", "status", "attempts"]):
                    decision.add(batch.column(0), batch.column(1), pc.fill_null(batch.column(2), 0))
                sources.append(Source(root))
            for run in runs:
                table = _open(stack, dest, run_manifest_key(run))
                if table is None:
                    continue
                recorded = _recorded_work(dest, table, known, decision, scratch / f"records-{run}.parquet")
                if recorded is not None:
                    sources.append(Source(stack.enter_context(recorded)))
                for batch in _batches(table, ["row_key", "status"]):
                    # A row counts as an attempt unless the run merely skipped it.
                    tried = pc.cast(pc.fill_null(pc.not_equal(batch.column(1), "skipped"), False), pa.int64())
                    decision.add(batch.column(0), batch.column(1), tried)
                sources.append(Source(table))
            included = sorted(known)
            _write_root(dest, sources, decision, included)
    return included


def included_runs(dest: Destination) -> list[str] | None:
    """The runs the destination's root manifest includes, from its footer (not the whole root).

    None when there is no root, or it was written before merging existed.
    """
    schema = manifest.read_schema(dest, ROOT)
    return None if schema is None else _runs_in(schema)


def runs_in(file: pq.ParquetFile) -> list[str] | None:
    """The runs a root manifest includes (None: written before merging existed)."""
    return _runs_in(file.schema_arrow)


def _runs_in(schema: pa.Schema) -> list[str] | None:
    meta = schema.metadata or {}
    return list(json.loads(meta[_RUNS_META])) if _RUNS_META in meta else None


def _batches(file: pq.ParquetFile, names: list[str]) -> Iterator[pa.RecordBatch]:
    yield from file.iter_batches(batch_size=manifest.ROW_GROUP_ROWS, columns=names, use_threads=False)


def _open(stack: contextlib.ExitStack, dest: Destination, key: str) -> pq.ParquetFile | None:
    path = stack.enter_context(dest.local_file(key))
    return None if path is None else stack.enter_context(manifest.open_parquet(path))


def _recorded_work(
    dest: Destination, table: pq.ParquetFile, runs: set[str], decision: Decision, path: Path
) -> pq.ParquetFile | None:
    """The records' earlier outcomes of rows the run only skipped, added to ``decision`` before the run's rows.

    An outcome counts as an attempt only if its run left no table to count it from. They
    are read and written to ``path`` in the order the merged table will want them (by
    the number of their key; new keys last, in order of first appearance), which a
    shuffled rerun would otherwise scatter over the whole file. Their order among
    themselves decides nothing else: each key has one record. None: no row needs one.
    """
    wanted = _pointed_at(table)
    if not len(wanted):
        return None
    fallback = pc.add(pa.array(range(len(wanted)), pa.int64()), decision.keys_seen)
    wanted = wanted.take(pc.sort_indices(pc.coalesce(decision.numbers(wanted), fallback)))
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = []  # added to the decision a few thousand at a time: each addition hashes every key
    try:
        for start in range(0, len(wanted), RECORDS_BATCH):
            batch = _record_batch(dest, wanted.slice(start, RECORDS_BATCH), runs)
            if not batch.num_rows:
                continue
            if writer is None:
                writer = pq.ParquetWriter(path, MERGED_SCHEMA)
            writer.write_table(batch, row_group_size=manifest.ROW_GROUP_ROWS)
            pending.append(batch.select(["row_key", "status", "attempts"]))
            if sum(part.num_rows for part in pending) >= manifest.ROW_GROUP_ROWS:
                _add(decision, pending)
        _add(decision, pending)
    finally:
        if writer is not None:
            writer.close()
    return None if writer is None else manifest.open_parquet(path)


def _add(decision: Decision, tables: list[pa.Table]) -> None:
    """Add ``tables``' rows (``row_key``, ``status``, ``attempts``) to ``decision``, and empty the list."""
    if tables:
        rows = pa.concat_tables(tables)
        decision.add(rows.column("row_key"), rows.column("status"), rows.column("attempts"))
        tables.clear()


def _pointed_at(table: pq.ParquetFile) -> pa.Array:
    """The keys of the rows a run skipped for an earlier outcome (already done, or failed for good).

    Each once, in order of first appearance: the order their records take in the decision.
    """
    wanted: list[pa.Array] = []
    for batch in _batches(table, ["row_key", "status", "error_kind"]):
        keys, kind = as_text(batch.column(0)), as_text(batch.column(2))
        pointing = pc.and_kleene(
            pc.and_kleene(pc.equal(batch.column(1), "skipped"), pc.is_valid(keys)),
            pc.and_kleene(pc.is_valid(kind), pc.invert(pc.is_in(kind, pa.array(_ONLY_POINTERS, pa.large_string())))),
        )
        selected = keys.filter(pc.fill_null(pointing, False))
        earlier = pa.chunked_array(wanted, pa.large_string())
        new = selected.filter(pc.invert(pc.is_in(selected, value_set=earlier)))
        if len(new):
            wanted.append(pc.unique(new))
        give_back()
    return pa.chunked_array(wanted, pa.large_string()).combine_chunks()


def _record_batch(dest: Destination, keys: pa.Array, runs: set[str]) -> pa.Table:
    """The records of ``keys`` that say what happened to the work, in that order."""
    rows = []
    for key in keys.to_pylist():
        record = read_record(dest, str(key))
        if record is None or record.status not in DONE_SOMETHING:
            continue
        row = record.as_dict()
        row["attempts"] = 0 if record.run in runs else 1
        rows.append(_timestamps(row))
    return pa.Table.from_pylist(rows, schema=MERGED_SCHEMA)


def _timestamps(row: dict[str, object]) -> dict[str, object]:
    for name in ("submitted_at", "completed_at"):
        value = row.get(name)
        if isinstance(value, (int, float)):
            row[name] = datetime.fromtimestamp(value, UTC)
    return row


def _write_root(dest: Destination, sources: Sequence[Source], decision: Decision, runs: list[str]) -> None:
    chosen, attempts = decision.winners()
    column = MERGED_SCHEMA.get_field_index("attempts")

    def chunks() -> Iterator[pa.Table]:
        for start in range(0, len(chosen), CHUNK_ROWS):
            rows = gather(sources, chosen.slice(start, CHUNK_ROWS).to_pylist(), MERGED_SCHEMA)
            yield rows.set_column(column, "attempts", attempts.slice(start, CHUNK_ROWS))

    meta = {**(MERGED_SCHEMA.metadata or {}), _RUNS_META: json.dumps(runs).encode()}
    manifest.write_files(dest, (ROOT, ROOT_CSV), MERGED_SCHEMA.with_metadata(meta), chunks())


def _run_manifests(dest: Destination) -> list[str]:
    runs = []
    for key in dest.list_sizes("runs/"):
        match = _RUN_MANIFEST.match(key)
        if match:
            runs.append(match.group(1))
    return runs
