"""A run's manifest: one row per input row, as Parquet and CSV, assembled from parts.

Each shard writes its rows' outcomes as a part, ``runs/<run>/parts/<shard>.parquet``,
when it ends; nothing of a shard is held after that. At the end of the run the parts are
streamed, in order, into ``runs/<run>/manifest.parquet`` and ``manifest.csv`` (the
destination's root manifest, merged over every run, is :mod:`i2v.manifest.merged`'s). Memory
stays bounded by one part; every file is written through the destination, atomically,
so a reader never sees half a table. Parquet files are written in row groups of at most
:data:`ROW_GROUP_ROWS` rows and read from a local file (:meth:`Destination.local_file`),
a row group or a batch at a time, so that reading one costs the same whatever its size.

Nothing here imports pandas (~45 MB in the flow process): the schema's ``pandas``
metadata, which makes ``pandas.read_parquet`` give nullable dtypes, is written by hand.

``manifest.csv`` is for people and spreadsheets: a cell that a spreadsheet would run as
a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
prefixed with ``'`` (OWASP's CSV-injection rule). ``manifest.parquet`` keeps the text as
it was.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from i2v.outcomes import COLUMNS, RowOutcome
from i2v.report.summary import Summary, Tally
from i2v.storage.destination import Destination

PARQUET = "application/vnd.apache.parquet"
_TIMESTAMPS = ("submitted_at", "completed_at")
_INTEGERS = ("row_index", "submit_attempts", "polls", "video_bytes", "width", "height")
_FLOATS = ("generation_seconds", "duration_s", "fps", "credits_used", "usd_spent")
_BOOLEANS = ("retryable",)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_COPY_CHUNK = 1 << 20
#: Rows turned into Python values at a time for the CSV.
_CSV_BATCH_ROWS = 1024
#: Rows per Parquet row group at most: what a reader decodes at once.
ROW_GROUP_ROWS = 16_384
#: Bytes read from the end of a stored Parquet object for its footer, at first: enough
#: for a manifest of a few hundred row groups; a longer footer takes a second read.
_FOOTER_GUESS = 64 * 1024
#: Ranged reads tried for a footer before the whole object is fetched instead.
_FOOTER_READS = 3
_PARQUET_MAGIC = b"PAR1"
#: The pandas release whose metadata format the schema follows (the oldest supported);
#: readers do not act on it.
_PANDAS_FORMAT = "2.2.0"


def _schema() -> pa.Schema:
    """The manifest's Arrow schema, carrying pandas' nullable dtypes in its metadata.

    With that metadata ``pandas.read_parquet`` gives ``Int64``, ``Float64``, ``boolean``,
    ``string`` and ``datetime64[us, UTC]`` columns (missing values stay missing) rather
    than floats and objects. It is what ``pa.Schema.from_pandas`` writes for a frame of
    those dtypes: ``numpy_type`` names the pandas dtype a column is read as.
    """
    fields, columns = [], []
    for name in COLUMNS:
        arrow_type, pandas_type, dtype, extra = _column_type(name)
        fields.append(pa.field(name, arrow_type))
        columns.append(
            {"name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": dtype, "metadata": extra}
        )
    pandas = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": _PANDAS_FORMAT,
    }
    return pa.schema(fields, metadata={b"pandas": json.dumps(pandas).encode()})


def _column_type(name: str) -> tuple[pa.DataType, str, str, dict[str, str] | None]:
    """A column's Arrow type, and pandas' logical type, dtype and extra metadata for it."""
    if name in _TIMESTAMPS:
        return pa.timestamp("us", tz="UTC"), "datetimetz", "datetime64[us]", {"timezone": "UTC"}
    if name in _INTEGERS:
        return pa.int64(), "int64", "Int64", None
    if name in _FLOATS:
        return pa.float64(), "float64", "Float64", None
    if name in _BOOLEANS:
        return pa.bool_(), "bool", "boolean", None
    return pa.large_string(), "object", "string", None


SCHEMA = _schema()


def open_parquet(path: Path) -> pq.ParquetFile:
    """A local Parquet file, to read a row group or a batch at a time.

    Not pre-buffered: by default pyarrow reads ahead every row group a read asks for,
    which for a reader going through the whole file is all of its columns at once.
    """
    return pq.ParquetFile(path, pre_buffer=False)


def read_schema(dest: Destination, key: str) -> pa.Schema | None:
    """A stored Parquet object's schema and metadata, read from its footer alone; None if it does not exist.

    The footer is read from the object's end (a ranged read on S3), not the whole object.
    Each read is parsed with the footer length found in that same read, so an object
    replaced between two reads is still read whole-footed, from the newer version.
    """
    size = _FOOTER_GUESS
    for _ in range(_FOOTER_READS):
        tail = dest.get_tail(key, size)
        if tail is None:
            return None
        if len(tail) < 8 or tail[-4:] != _PARQUET_MAGIC:
            break  # not Parquet: the whole object, read below, gives pyarrow's own error
        size = int.from_bytes(tail[-8:-4], "little") + 8
        if size <= len(tail):
            return pq.read_schema(pa.BufferReader(tail[len(tail) - size :]))
    with dest.local_file(key) as path:
        return None if path is None else pq.read_schema(path)


def part_key(run: str, shard: int) -> str:
    """Where a shard's part of the run's manifest lives."""
    return f"runs/{run}/parts/{shard:06d}.parquet"


def to_table(outcomes: Sequence[RowOutcome]) -> pa.Table:
    """Outcomes as an Arrow table with the manifest's schema, ordered by input row."""
    ordered = sorted(outcomes, key=lambda o: o.row_index)
    columns: dict[str, list[Any]] = {name: [getattr(o, name) for o in ordered] for name in COLUMNS}
    for name in _TIMESTAMPS:
        columns[name] = [None if value is None else datetime.fromtimestamp(value, UTC) for value in columns[name]]
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def write_part(dest: Destination, run: str, shard: int, outcomes: Sequence[RowOutcome]) -> str:
    """Write one shard's outcomes; returns the part's key."""
    key = part_key(run, shard)
    dest.put_bytes(key, _parquet_bytes(to_table(outcomes)), PARQUET)
    return key


def read_part(dest: Destination, key: str) -> pa.Table | None:
    """A part written by :func:`write_part`, or None if it is missing."""
    with dest.local_file(key) as path:
        if path is None:
            return None
        with open_parquet(path) as part:
            return conform(part.read(use_threads=False))


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
    return write_files(dest, (f"runs/{run}/manifest.parquet", f"runs/{run}/manifest.csv"), SCHEMA, tables)


def write_files(
    dest: Destination, keys: tuple[str, str], schema: pa.Schema, tables: Iterable[pa.Table]
) -> dict[str, str]:
    """Stream ``tables`` (``schema``'s columns, in order) into a Parquet and a CSV object, ``keys``.

    Both are written to local temporary files, then uploaded through the destination's
    atomic writer, the Parquet file first. Returns the URIs written.
    """
    with tempfile.TemporaryDirectory(prefix="i2v-manifest-") as tmp:
        parquet_path = Path(tmp) / "manifest.parquet"
        csv_path = Path(tmp) / "manifest.csv"
        with (
            pq.ParquetWriter(parquet_path, schema) as parquet,
            csv_path.open("w", newline="", encoding="utf-8") as text,
        ):
            out = csv.writer(text)
            out.writerow(schema.names)
            for table in tables:
                parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
                _csv_rows(out, table, schema.names)
        written = {}
        for key, path, kind in ((keys[0], parquet_path, PARQUET), (keys[1], csv_path, "text/csv")):
            _upload(dest, key, path, kind)
            written[key] = dest.uri_for(key)
    return written


def write_manifest(dest: Destination, outcomes: Sequence[RowOutcome], *, run: str) -> dict[str, str]:
    """Write a run's whole manifest at once (small runs and tests); returns the URIs written."""
    return write_tables(dest, run, iter([to_table(outcomes)]))


def _csv_rows(out: Any, table: pa.Table, columns: Sequence[str]) -> None:
    for batch in table.to_batches(max_chunksize=_CSV_BATCH_ROWS):
        for record in batch.to_pylist():
            out.writerow([_csv_cell(record[name]) for name in columns])


def read_outcomes(dest: Destination, key: str = "manifest.parquet") -> list[RowOutcome]:
    """The outcomes of a manifest (empty if there is none)."""
    outcomes = []
    with dest.local_file(key) as path:
        if path is None:
            return []
        with open_parquet(path) as table:
            columns = [name for name in table.schema_arrow.names if name in COLUMNS]
            for batch in table.iter_batches(columns=columns, use_threads=False):
                for row in batch.to_pylist():
                    for name in _TIMESTAMPS:
                        if row.get(name) is not None:
                            row[name] = row[name].timestamp()
                    outcomes.append(RowOutcome(**row))
    return outcomes


def summarize(dest: Destination, key: str) -> Summary:
    """The summary of a stored manifest, read a batch of rows at a time."""
    tally = Tally()
    with dest.local_file(key) as path:
        if path is not None:
            columns = ["row_index", "id", "status", "error_kind", "error_message", "retryable"]
            columns += ["credits_used", "video_bytes", "generation_seconds"]
            with open_parquet(path) as table:
                for batch in table.iter_batches(columns=columns, use_threads=False):
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
    pq.write_table(table, buffer, row_group_size=ROW_GROUP_ROWS)
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
