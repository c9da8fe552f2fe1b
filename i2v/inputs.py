"""Reading a CSV input as a stream of records, and cutting it into shards.

A shard is a bounded run of consecutive rows, found by byte offset, so that any
process, here or on another worker, can read just its rows without reading what comes
before. :func:`plan` makes one pass over the file (parsing, not validating) to find the
shard boundaries, count the rows and catch ids reused for different work across the
whole file; :func:`read_records` reads one shard's records.

Nothing here holds more than one record at a time, except the plan's id index, which
lives only while planning.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from i2v.errors import InputError

REQUIRED_COLUMNS = ("image_url", "prompt")
#: The longest cell read: room for a 20 MB image inline as a data URI, and no more.
MAX_CELL_CHARS = 32 * 1024 * 1024
csv.field_size_limit(MAX_CELL_CHARS)


@dataclass(frozen=True)
class Shard:
    """Rows ``first_row`` .. ``first_row + rows - 1`` of an input, starting at byte ``offset``."""

    index: int
    first_row: int
    rows: int
    offset: int
    #: CSV line (1-based) on which the shard's first record starts.
    line: int
    #: Row index → why its ``id`` cannot be used (taken by an earlier row for other work).
    id_conflicts: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputPlan:
    """An input file cut into shards."""

    path: str
    header: tuple[str, ...]
    total_rows: int
    shards: tuple[Shard, ...]

    def only(self, shard: Shard) -> InputPlan:
        """This plan reduced to one shard: what a shard's own flow run needs to know."""
        return InputPlan(self.path, self.header, self.total_rows, (shard,))


@dataclass(frozen=True)
class Record:
    """One CSV record: its row index, the line it starts on, and its cells by column."""

    index: int
    line: int
    cells: dict[str, str]
    #: Cells beyond the header's columns (the row is invalid if there are any).
    extra: int = 0


def plan(path: str | Path, *, rows_per_shard: int) -> InputPlan:
    """One pass over the input: its header, row count and shard boundaries."""
    if rows_per_shard < 1:
        raise InputError(f"rows per shard must be at least 1, got {rows_per_shard}")
    source = Path(path)
    shards: list[Shard] = []
    ids = _IdIndex()
    with _reader(source, offset=None, line=1) as (header, records):
        start: tuple[int, int, int] | None = None  # (first row, offset, line)
        conflicts: dict[int, str] = {}
        count = 0
        for offset, record in records:
            if start is None:
                start = (record.index, offset, record.line)
            conflict = ids.check(record)
            if conflict:
                conflicts[record.index] = conflict
            count += 1
            if record.index - start[0] + 1 == rows_per_shard:
                shards.append(Shard(len(shards), start[0], rows_per_shard, start[1], start[2], conflicts))
                start, conflicts = None, {}
        if start is not None:
            shards.append(Shard(len(shards), start[0], count - start[0], start[1], start[2], conflicts))
    return InputPlan(str(source), header, count, tuple(shards))


def read_header(path: str | Path) -> tuple[str, ...]:
    """The input's column names; raises :class:`InputError` if the file is not a usable CSV."""
    with _reader(Path(path), offset=None, line=1) as (header, _):
        return header


def read_records(input_plan: InputPlan, shard: Shard) -> Iterator[Record]:
    """The records of one shard, read from its byte offset."""
    source = Path(input_plan.path)
    with _reader(source, offset=shard.offset, line=shard.line, header=input_plan.header) as (_, records):
        for count, (_, record) in enumerate(records):
            if count == shard.rows:
                return
            yield Record(shard.first_row + count, record.line, record.cells, record.extra)


def all_records(path: str | Path) -> Iterator[Record]:
    """Every record of an input, in order."""
    with _reader(Path(path), offset=None, line=1) as (_, records):
        for _, record in records:
            yield record


@contextmanager
def _reader(
    path: Path, *, offset: int | None, line: int, header: tuple[str, ...] | None = None
) -> Iterator[tuple[tuple[str, ...], Iterator[tuple[int, Record]]]]:
    """The header and an iterator of (byte offset, record); file problems become one InputError."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"CSV file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a CSV file") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror}") from None
    with handle:
        lines = _Lines(handle, start=0 if offset is None else offset, line=line)
        try:
            reader = csv.reader(lines)
            if header is None:
                header = tuple(name.strip() for name in next(reader, []))
                _check_header(header, path)
            yield header, _records(reader, lines, header)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc.reason} on CSV line {lines.line})") from None
        except csv.Error as exc:
            raise InputError(f"{path} is not a readable CSV (line {lines.line}): {exc}") from None


def _records(reader: Iterator[list[str]], lines: _Lines, header: tuple[str, ...]) -> Iterator[tuple[int, Record]]:
    index = 0
    while True:
        offset = lines.offset
        start_line = lines.line + 1
        cells = next(reader, None)
        if cells is None:
            return
        if not any(cell.strip() for cell in cells):
            # Blank lines separate nothing and ask for nothing.
            continue
        named = dict(zip(header, cells, strict=False))
        yield offset, Record(index, start_line, named, extra=max(0, len(cells) - len(header)))
        index += 1


def _check_header(header: tuple[str, ...], path: Path) -> None:
    if not header or not any(header):
        raise InputError(f"{path} is empty: it needs a header with image_url and prompt")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)} (columns found: {', '.join(header)})")


class _Lines:
    """Text lines of a binary file, counting bytes and lines as ``csv.reader`` takes them."""

    def __init__(self, handle: BinaryIO, *, start: int, line: int) -> None:
        self._handle = handle
        handle.seek(start)
        self.offset = start
        self.line = line - 1
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._first = start == 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self._handle.readline()
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.line += 1
        text = self._decoder.decode(raw)
        if self._first:
            text = text.removeprefix("\ufeff")
            self._first = False
        return text


class _IdIndex:
    """Which row first used each ``id``, and for what work (by a digest of its cells)."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[int, bytes]] = {}

    def check(self, record: Record) -> str | None:
        row_id = record.cells.get("id", "").strip()
        if not row_id:
            return None
        work = {k: v.strip() for k, v in record.cells.items() if k != "id"}
        digest = hashlib.blake2b(repr(sorted(work.items())).encode(), digest_size=12).digest()
        first = self._first.setdefault(row_id, (record.index, digest))
        if first[1] != digest:
            return f"{row_id!r} is already used by row {first[0]} for different work"
        return None
