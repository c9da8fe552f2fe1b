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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from i2v.manifest import PARQUET, SCHEMA, conform, write_csv
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
    """``root`` (already merged) followed by each run's table, oldest first, merged by row key.

    Which row wins is decided on three small columns; the winners are then taken whole
    from the Arrow table, so the text columns of 100,000 rows never become Python objects.
    """
    tables = [conform(root, MERGED_SCHEMA)] if root is not None else []
    tables += [_with_attempts(table) for table in runs]
    if not tables:
        return MERGED_SCHEMA.empty_table()
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
    # The latest row that did something; a key only ever skipped keeps its latest skip.
    acted = rows[rows["status"].isin(_DONE_SOMETHING)].drop_duplicates("row_key", keep="last")
    anything = rows.drop_duplicates("row_key", keep="last")
    best = pd.concat([acted, anything]).drop_duplicates("row_key", keep="first")
    best = best.assign(_first=best["row_key"].map(first_seen)).sort_values("_first")
    merged = whole.take(pa.array(best["_order"].to_numpy()))
    totals = pa.array(best["row_key"].map(attempts).to_numpy(), pa.int64())
    return merged.set_column(merged.schema.get_field_index("attempts"), "attempts", totals)


def _with_attempts(table: pa.Table) -> pa.Table:
    """A run's table with ``attempts``: one for each row it did not merely skip."""
    if table.schema.equals(MERGED_SCHEMA):
        return table  # already counted (a run's table joined with its records)
    if "attempts" in table.column_names:
        return conform(table, MERGED_SCHEMA)
    tried = pc.cast(pc.not_equal(table.column("status"), "skipped"), pa.int64())
    return conform(table.append_column("attempts", tried), MERGED_SCHEMA)


def _with_recorded_work(dest: Destination, table: pa.Table, runs: set[str]) -> pa.Table:
    """The run's table, where a row it only skipped is joined by its record's earlier outcome.

    That outcome counts as an attempt only if its run left no table to count it from.
    """
    table = _with_attempts(table)
    kind = table.column("error_kind")
    # Skips that name the kind of an earlier outcome: already done, or failed for good.
    pointing = pc.and_kleene(
        pc.and_kleene(pc.equal(table.column("status"), "skipped"), pc.is_valid(table.column("row_key"))),
        pc.and_kleene(pc.is_valid(kind), pc.invert(pc.is_in(kind, pa.array(_ONLY_POINTERS)))),
    )
    earlier = []
    for key in pc.unique(table.filter(pc.fill_null(pointing, False)).column("row_key")).to_pylist():
        record = read_record(dest, str(key))
        if record is None or record.status not in _DONE_SOMETHING:
            continue
        row = asdict(record)
        row["attempts"] = 0 if record.run in runs else 1
        earlier.append(row)
    if not earlier:
        return table
    # The earlier outcome goes first: the run's own row still wins if it did something.
    recorded = pa.Table.from_pylist([_timestamps(row) for row in earlier], schema=MERGED_SCHEMA)
    return pa.concat_tables([recorded, table])


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
    write_csv(dest, ROOT_CSV, table)


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
