"""A run's manifest: one row per input row, as Parquet and CSV, assembled from parts.

Each shard writes its rows' outcomes as a part, ``runs/<run>/parts/<shard>.parquet``,
when it ends; nothing of a shard is held after that. At the end of the run the parts are
streamed, in order, into ``runs/<run>/manifest.parquet`` and ``manifest.csv`` (the
destination's root manifest, merged over every run, is :mod:`i2v.merged`'s). Memory
stays bounded by one part; every file is written through the destination, atomically,
so a reader never sees half a table.

``manifest.csv`` is for people and spreadsheets: a cell that a spreadsheet would run as
a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
prefixed with ``'`` (OWASP's CSV-injection rule). ``manifest.parquet`` keeps the text as
it was.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from i2v.outcomes import COLUMNS, RowOutcome
from i2v.report import Summary, Tally
from i2v.storage import Destination

PARQUET = "application/vnd.apache.parquet"
_TIMESTAMPS = ("submitted_at", "completed_at")
_INTEGERS = ("row_index", "submit_attempts", "polls", "video_bytes", "width", "height")
_FLOATS = ("generation_seconds", "duration_s", "fps", "credits_used")
_BOOLEANS = ("retryable",)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_COPY_CHUNK = 1 << 20


def _schema() -> pa.Schema:
    """The manifest's Arrow schema, carrying pandas' nullable dtypes in its metadata.

    With that metadata ``pandas.read_parquet`` gives ``Int64``, ``boolean`` and ``string``
    columns (missing values stay missing) rather than floats and objects.
    """
    frame = pd.DataFrame({name: pd.Series(dtype=_pandas_dtype(name)) for name in COLUMNS})
    return pa.Schema.from_pandas(frame, preserve_index=False)


def _pandas_dtype(name: str) -> str:
    if name in _TIMESTAMPS:
        return "datetime64[us, UTC]"
    if name in _INTEGERS:
        return "Int64"
    if name in _FLOATS:
        return "Float64"
    if name in _BOOLEANS:
        return "boolean"
    return "string"


SCHEMA = _schema()


def part_key(run: str, shard: int) -> str:
    """Where a shard's part of the run's manifest lives."""
    return f"runs/{run}/parts/{shard:06d}.parquet"


def to_table(outcomes: Sequence[RowOutcome]) -> pa.Table:
    """Outcomes as an Arrow table with the manifest's schema, ordered by input row."""
    rows = []
    for outcome in sorted(outcomes, key=lambda o: o.row_index):
        row = asdict(outcome)
        for name in _TIMESTAMPS:
            if row[name] is not None:
                row[name] = datetime.fromtimestamp(row[name], UTC)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_part(dest: Destination, run: str, shard: int, outcomes: Sequence[RowOutcome]) -> str:
    """Write one shard's outcomes; returns the part's key."""
    key = part_key(run, shard)
    dest.put_bytes(key, _parquet_bytes(to_table(outcomes)), PARQUET)
    return key


def read_part(dest: Destination, key: str) -> pa.Table | None:
    """A part written by :func:`write_part`, or None if it is missing."""
    raw = dest.get_bytes(key)
    if raw is None:
        return None
    return conform(pq.read_table(io.BytesIO(raw)))


def conform(table: pa.Table, schema: pa.Schema = SCHEMA) -> pa.Table:
    """``table`` in ``schema``'s columns and types; a column it lacks comes back empty (null).

    Manifests written before a column existed (``mismatch``) still read, merge and publish.
    """
    columns = [
        table.column(field.name) if field.name in table.column_names else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata()).cast(schema)


def assemble(dest: Destination, run: str, parts: Sequence[pa.Table]) -> dict[str, str]:
    """Stream ``parts`` into the run's own manifest; returns the URIs written."""
    return write_tables(dest, run, iter(parts))


def write_tables(dest: Destination, run: str, tables: Iterator[pa.Table]) -> dict[str, str]:
    """Write a run's manifest from tables given in row order, one at a time; returns the URIs written."""
    with tempfile.TemporaryDirectory(prefix="i2v-manifest-") as tmp:
        parquet_path = Path(tmp) / "manifest.parquet"
        csv_path = Path(tmp) / "manifest.csv"
        with pq.ParquetWriter(parquet_path, SCHEMA) as parquet, csv_path.open("w", newline="") as text:
            out = csv.writer(text)
            out.writerow(COLUMNS)
            for table in tables:
                parquet.write_table(table)
                _csv_rows(out, table, COLUMNS)
        written = {}
        for key, path, kind in (
            (f"runs/{run}/manifest.parquet", parquet_path, PARQUET),
            (f"runs/{run}/manifest.csv", csv_path, "text/csv"),
        ):
            _upload(dest, key, path, kind)
            written[key] = dest.uri_for(key)
    return written


def write_manifest(dest: Destination, outcomes: Sequence[RowOutcome], *, run: str) -> dict[str, str]:
    """Write a run's whole manifest at once (small runs and tests); returns the URIs written."""
    return write_tables(dest, run, iter([to_table(outcomes)]))


def write_csv(dest: Destination, key: str, table: pa.Table) -> None:
    """Stream ``table`` as spreadsheet-safe CSV into ``key``, a batch of rows at a time."""
    writer = dest.open_writer(key, "text/csv")
    try:
        text = io.StringIO(newline="")
        out = csv.writer(text)
        out.writerow(table.column_names)
        for batch in table.to_batches(max_chunksize=4096):
            _csv_rows(out, pa.Table.from_batches([batch]), table.column_names)
            writer.write(text.getvalue().encode())
            text.seek(0)
            text.truncate()
        writer.write(text.getvalue().encode())
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def _csv_rows(out: Any, table: pa.Table, columns: Sequence[str]) -> None:
    for batch in table.to_batches(max_chunksize=4096):
        for record in batch.to_pylist():
            out.writerow([_csv_cell(record[name]) for name in columns])


def read_outcomes(dest: Destination, key: str = "manifest.parquet") -> list[RowOutcome]:
    """The outcomes of a manifest (empty if there is none)."""
    raw = dest.get_bytes(key)
    if raw is None:
        return []
    frame = pd.read_parquet(io.BytesIO(raw))
    for name in _TIMESTAMPS:
        frame[name] = frame[name].map(lambda t: None if pd.isna(t) else t.timestamp()).astype(object)
    frame = frame.astype(object).where(frame.notna(), None)
    known = set(COLUMNS)
    return [RowOutcome(**{str(k): v for k, v in record.items() if k in known}) for record in frame.to_dict("records")]


def summarize(dest: Destination, key: str) -> Summary:
    """The summary of a stored manifest, read a batch of rows at a time."""
    raw = dest.get_bytes(key)
    tally = Tally()
    if raw is not None:
        columns = ["row_index", "id", "status", "error_kind", "error_message", "retryable"]
        columns += ["credits_used", "video_bytes", "generation_seconds"]
        for batch in pq.ParquetFile(io.BytesIO(raw)).iter_batches(columns=columns):
            for record in batch.to_pylist():
                tally.add(record)
    return tally.summary()


def neutralise(text: str) -> str:
    """A cell a spreadsheet would run as a formula, made inert with a leading ``'``."""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return neutralise(value)
    return value


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _upload(dest: Destination, key: str, path: Path, content_type: str) -> None:
    writer = dest.open_writer(key, content_type)
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_COPY_CHUNK):
                writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
