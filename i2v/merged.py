"""The destination's merged manifest: one row per piece of work ever submitted there.

Every run writes its own table, ``runs/<run>/manifest.parquet``, one row per input row.
The root ``manifest.parquet`` and ``manifest.csv`` are the destination's current state:
one row per distinct row key, its latest outcome, how many runs ``attempts`` it, and the
``run`` that produced it. A later run's outcome replaces an earlier one, except that a
row it merely skipped (already done, duplicate, stopped) never hides what an earlier run
did to it.

A run that crashed wrote no table of its own, but every outcome it reached is in the
destination's records (:mod:`i2v.records`): when a later run merely skips a row whose
work an earlier run did (already done, or failed for good), the merge takes that
earlier outcome from the row's record, so a crash never leaves a hole in the manifest.

Two runs may finish at the same time in one destination, and no lock guards the root:
the root records which runs it includes (in its Parquet metadata), and a run that has
written it lists the runs again and merges once more if one appeared meanwhile. The
last run to finish therefore leaves a root that includes every run written before it
looked, and a crash leaves no lock behind.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from i2v.manifest import PARQUET, SCHEMA, conform, csv_bytes
from i2v.records import read_record
from i2v.storage import Destination

ROOT = "manifest.parquet"
ROOT_CSV = "manifest.csv"
_RUNS_META = b"i2v.runs"
_RUN_MANIFEST = re.compile(r"^runs/([^/]+)/manifest\.parquet$")
#: Statuses that say what happened to the work (a skip only points elsewhere).
_DONE_SOMETHING = ("completed", "failed")
#: Skips that say nothing about the work itself: the row repeated another, or was never reached.
_ONLY_POINTERS = ("duplicate", "stopped")

MERGED_SCHEMA = SCHEMA.append(pa.field("attempts", pa.int64()))


def run_manifest_key(run: str) -> str:
    """Where a run's own manifest lives."""
    return f"runs/{run}/manifest.parquet"


def merge(dest: Destination, *, max_rounds: int = 20) -> list[str]:
    """Bring the root manifest up to date with every run's table; returns the runs it includes."""
    included: list[str] = []
    for _ in range(max_rounds):
        root, included = read_root(dest)
        runs = sorted(key for key in _run_manifests(dest) if key not in included)
        if not runs:
            return included
        tables = [table for run in runs if (table := _read(dest, run_manifest_key(run))) is not None]
        known = {*included, *runs}
        merged = merge_tables(root, [_with_recorded_work(dest, table, known) for table in tables])
        included = sorted({*included, *runs})
        _write_root(dest, merged, included)
    return included


def read_root(dest: Destination) -> tuple[pa.Table | None, list[str]]:
    """The merged table and the runs it includes (none yet: ``(None, [])``)."""
    raw = dest.get_bytes(ROOT)
    if raw is None:
        return None, []
    table = pq.read_table(io.BytesIO(raw))
    meta = table.schema.metadata or {}
    if _RUNS_META not in meta:
        # A root written before merging existed: it is one run's table, merged like one.
        return None, []
    return conform(table, MERGED_SCHEMA), list(json.loads(meta[_RUNS_META]))


def included_runs(raw: bytes) -> list[str] | None:
    """The runs a root manifest's bytes include, from its footer (None: written before merging existed)."""
    meta = pq.read_schema(io.BytesIO(raw)).metadata or {}
    return list(json.loads(meta[_RUNS_META])) if _RUNS_META in meta else None


def merge_tables(root: pa.Table | None, runs: Sequence[pa.Table]) -> pa.Table:
    """``root`` (already merged) followed by each run's table, oldest first, merged by row key."""
    frames = []
    if root is not None:
        frames.append(root.to_pandas())
    for table in runs:
        frame = table.to_pandas()
        if "attempts" not in frame:
            frame["attempts"] = (frame["status"] != "skipped").astype("int64")
        frames.append(frame)
    if not frames:
        return MERGED_SCHEMA.empty_table()
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["row_key"].notna()].reset_index(drop=True)
    rows["_order"] = range(len(rows))
    attempts = rows.groupby("row_key", sort=False)["attempts"].sum()
    first_seen = rows.drop_duplicates("row_key", keep="first").set_index("row_key")["_order"]
    # The latest row that did something; a key only ever skipped keeps its latest skip.
    acted = rows[rows["status"].isin(_DONE_SOMETHING)].drop_duplicates("row_key", keep="last")
    anything = rows.drop_duplicates("row_key", keep="last")
    best = pd.concat([acted, anything]).drop_duplicates("row_key", keep="first")
    best = best.assign(attempts=best["row_key"].map(attempts), _first=best["row_key"].map(first_seen))
    best = best.sort_values("_first").drop(columns=["_order", "_first"]).reset_index(drop=True)
    return pa.Table.from_pandas(best, schema=MERGED_SCHEMA, preserve_index=False)


def _with_recorded_work(dest: Destination, table: pa.Table, runs: set[str]) -> pa.Table:
    """The run's table, where a row it only skipped is joined by its record's earlier outcome.

    That outcome counts as an attempt only if its run left no table to count it from.
    """
    frame = table.to_pandas()
    frame["attempts"] = (frame["status"] != "skipped").astype("int64")
    pointed = frame[(frame["status"] == "skipped") & frame["error_kind"].notna() & frame["row_key"].notna()]
    pointed = pointed[~pointed["error_kind"].isin(_ONLY_POINTERS)]
    earlier = []
    for key in pointed["row_key"].unique():
        record = read_record(dest, str(key))
        if record is None or record.status not in _DONE_SOMETHING:
            continue
        row = asdict(record)
        row["attempts"] = 0 if record.run in runs else 1
        earlier.append(row)
    if not earlier:
        return pa.Table.from_pandas(frame, schema=MERGED_SCHEMA, preserve_index=False)
    # The earlier outcome goes first: the run's own row still wins if it did something.
    recorded = pa.Table.from_pylist([_timestamps(row) for row in earlier], schema=MERGED_SCHEMA)
    return pa.concat_tables([recorded, pa.Table.from_pandas(frame, schema=MERGED_SCHEMA, preserve_index=False)])


def _timestamps(row: dict[str, object]) -> dict[str, object]:
    for name in ("submitted_at", "completed_at"):
        value = row.get(name)
        if isinstance(value, (int, float)):
            row[name] = datetime.fromtimestamp(value, UTC)
    return row


def _write_root(dest: Destination, table: pa.Table, runs: list[str]) -> None:
    meta = dict(table.schema.metadata or {})
    meta[_RUNS_META] = json.dumps(runs).encode()
    table = table.replace_schema_metadata(meta)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    dest.put_bytes(ROOT, buffer.getvalue(), PARQUET)
    dest.put_bytes(ROOT_CSV, csv_bytes(table), "text/csv")


def _run_manifests(dest: Destination) -> list[str]:
    runs = []
    for key in dest.list_sizes("runs/"):
        match = _RUN_MANIFEST.match(key)
        if match:
            runs.append(match.group(1))
    return runs


def _read(dest: Destination, key: str) -> pa.Table | None:
    raw = dest.get_bytes(key)
    return None if raw is None else conform(pq.read_table(io.BytesIO(raw)))
