"""Records of the inputs that are not CSV: JSON Lines and Parquet, as named text cells.

Both give the same columns a CSV would (``image_url``, ``prompt``, ``id``, parameters);
values become the text a CSV cell would hold, so one validator serves every format.
JSON Lines is read line by line through the same bounded chunker as CSV; Parquet a
batch of rows at a time, from the row group holding the first row wanted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from i2v.errors import InputError

if TYPE_CHECKING:
    import pyarrow.parquet as pq

#: Parquet rows converted at a time.
BATCH_ROWS = 512


class _Chunk(Protocol):
    @property
    def offset(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def data(self) -> bytes | None: ...


@dataclass(frozen=True)
class Item:
    """One record: its cells, or why it has none."""

    offset: int | None
    line: int
    cells: dict[str, str] | None
    problem: str | None = None


def cell_text(value: Any) -> str:
    """A value as the text of a CSV cell: ``5`` for 5.0, ``true`` for True, JSON for lists."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def json_lines(chunks: Iterator[_Chunk]) -> Iterator[Item]:
    """Each non-blank line as an object's cells; a line that is not one is that row's problem."""
    for chunk in chunks:
        if chunk.data is None:
            yield Item(chunk.offset, chunk.line, None, "is longer than the limit for one row")
            continue
        if not chunk.data.strip():
            continue
        try:
            value = json.loads(chunk.data)
        except UnicodeDecodeError as exc:
            yield Item(chunk.offset, chunk.line, None, f"is not UTF-8 text ({exc.reason})")
            continue
        except ValueError as exc:
            yield Item(chunk.offset, chunk.line, None, f"is not valid JSON ({exc})")
            continue
        if not isinstance(value, dict):
            yield Item(chunk.offset, chunk.line, None, f"is a JSON {type(value).__name__}, not an object")
            continue
        yield Item(chunk.offset, chunk.line, {str(k).strip(): cell_text(v) for k, v in value.items()})


@contextmanager
def parquet(
    handle: BinaryIO, uri: str, *, start: int
) -> Iterator[tuple[tuple[str, ...], Iterator[tuple[int, dict[str, str]]]]]:
    """The columns and the rows, from row number ``start``, of a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(handle)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{uri} is not a readable Parquet file: {exc}") from None
    yield tuple(table.schema_arrow.names), _parquet_rows(table, uri, start)


def _parquet_rows(table: pq.ParquetFile, uri: str, start: int) -> Iterator[tuple[int, dict[str, str]]]:
    import pyarrow as pa

    first_group, number = 0, 0
    meta = table.metadata
    while first_group < meta.num_row_groups and number + meta.row_group(first_group).num_rows <= start:
        number += meta.row_group(first_group).num_rows
        first_group += 1
    groups = list(range(first_group, meta.num_row_groups))
    if not groups:
        return
    try:
        for batch in table.iter_batches(batch_size=BATCH_ROWS, row_groups=groups):
            for row in batch.to_pylist():
                if number >= start:
                    yield number, {str(k).strip(): cell_text(v) for k, v in row.items()}
                number += 1
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{uri}: Parquet row {number} cannot be read: {exc}") from None
