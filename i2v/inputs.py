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
import io
import itertools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from i2v import tabular
from i2v.errors import InputError
from i2v.limits import Limits
from i2v.names import disambiguated, output_name
from i2v.sources import Format, Opener, input_format, open_local

REQUIRED_COLUMNS = ("image_url", "prompt")
#: Bytes read from the file at a time: a longer line is read in pieces of this size.
_PIECE = 1 << 20
#: Characters no cell may hold: NUL and the other C0/C1 controls except tab, CR and LF,
#: and the stand-ins for bytes that were not UTF-8 (``surrogateescape``).
_UNUSABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udcff]")
# A row's size is bounded before the parser sees it (see _chunks), so the parser's own
# per-field limit must not cut in first.
csv.field_size_limit(1 << 62)


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
    #: Row index → its output name, where the usual one was taken by another id.
    names: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputPlan:
    """An input file cut into shards."""

    path: str
    header: tuple[str, ...]
    total_rows: int
    shards: tuple[Shard, ...]
    #: The longest record read; a longer one fails its row without being held.
    max_row_bytes: int = Limits().max_row_bytes
    format: Format = "csv"

    def only(self, shard: Shard) -> InputPlan:
        """This plan reduced to one shard: what a shard's own flow run needs to know."""
        return replace(self, shards=(shard,))


@dataclass(frozen=True)
class Record:
    """One CSV record: its row index, the line it starts on, and its cells by column."""

    index: int
    line: int
    cells: dict[str, str]
    #: Cells beyond the header's columns (the row is invalid if there are any).
    extra: int = 0
    #: (field, reason) when the record cannot be a row: too long, not UTF-8, control characters.
    problem: tuple[str | None, str] | None = None


def plan(
    path: str | Path,
    *,
    rows_per_shard: int,
    limits: Limits | None = None,
    format: str | None = None,
    opener: Opener = open_local,
) -> InputPlan:
    """One pass over the input: its header, row count and shard boundaries.

    ``format`` is ``csv``, ``jsonl`` or ``parquet`` (default: from the extension);
    ``opener`` opens the URI (local files by default; see :mod:`i2v.sources` for S3).
    """
    if rows_per_shard < 1:
        raise InputError(f"rows per shard must be at least 1, got {rows_per_shard}")
    limits = limits or Limits()
    source = str(path)
    fmt = input_format(source, format)
    shards: list[Shard] = []
    ids = _IdIndex()
    reading = _Reading(source, fmt, opener, limits.max_row_bytes)
    with reading.open(offset=None, line=1) as (header, records):
        start: tuple[int, int, int] | None = None  # (first row, offset, line)
        conflicts: dict[int, str] = {}
        names: dict[int, str] = {}
        count = 0
        for offset, record in records:
            if count == limits.max_rows:
                raise InputError(
                    f"{source} has more than {limits.max_rows:,} rows (the limit for one run; "
                    "--max-rows raises it, or split the file)"
                )
            if start is None or (offset is not None and count - start[0] >= rows_per_shard):
                if start is not None:
                    shards.append(Shard(len(shards), start[0], count - start[0], start[1], start[2], conflicts, names))
                    conflicts, names = {}, {}
                # Only a record that starts a chunk of the file can start a shard.
                assert offset is not None
                start = (record.index, offset, record.line)
            conflict, name = ids.check(record)
            if conflict:
                conflicts[record.index] = conflict
            if name:
                names[record.index] = name
            count += 1
        if start is not None:
            shards.append(Shard(len(shards), start[0], count - start[0], start[1], start[2], conflicts, names))
    return InputPlan(source, header, count, tuple(shards), limits.max_row_bytes, fmt)


def read_header(path: str | Path, *, format: str | None = None, opener: Opener = open_local) -> tuple[str, ...]:
    """The input's column names; raises :class:`InputError` if the file is not usable."""
    source = str(path)
    reading = _Reading(source, input_format(source, format), opener, Limits().max_row_bytes)
    with reading.open(offset=None, line=1) as (header, _):
        return header


def read_records(input_plan: InputPlan, shard: Shard, *, opener: Opener = open_local) -> Iterator[Record]:
    """The records of one shard, read from its offset."""
    reading = _Reading(input_plan.path, input_plan.format, opener, input_plan.max_row_bytes)
    with reading.open(offset=shard.offset, line=shard.line, header=input_plan.header) as (_, records):
        for count, (_, record) in enumerate(records):
            if count == shard.rows:
                return
            yield replace(record, index=shard.first_row + count)


def all_records(
    path: str | Path, *, limits: Limits | None = None, format: str | None = None, opener: Opener = open_local
) -> Iterator[Record]:
    """Every record of an input, in order."""
    source = str(path)
    reading = _Reading(source, input_format(source, format), opener, (limits or Limits()).max_row_bytes)
    with reading.open(offset=None, line=1) as (_, records):
        for _, record in records:
            yield record


@dataclass(frozen=True)
class _Reading:
    """How to read one input: where, in which format, through what, with which row limit."""

    uri: str
    format: Format
    opener: Opener
    max_row_bytes: int

    @contextmanager
    def open(
        self, *, offset: int | None, line: int, header: tuple[str, ...] | None = None
    ) -> Iterator[tuple[tuple[str, ...], Iterator[tuple[int | None, Record]]]]:
        """The header and an iterator of (offset, record); file problems become one InputError.

        The offset is where a shard starting at that record begins: a byte offset for CSV
        and JSON Lines, a row number for Parquet; None where no shard may start.
        """
        with self.opener(self.uri) as handle:
            if self.format == "parquet":
                with tabular.parquet(handle, self.uri, start=offset or 0) as (found, rows):
                    header = header or _checked(found, self.uri)
                    yield header, ((number, _mapped(number, number + 1, cells)) for number, cells in rows)
                return
            # JSON escapes its quotes with a backslash: a JSON line ends at its newline.
            quoting = self.format == "csv"
            start = 0 if offset is None else offset
            chunks = _chunks(handle, self.uri, start=start, line=line, limit=self.max_row_bytes, quoting=quoting)
            if self.format == "jsonl":
                items = tabular.json_lines(chunks)
                if header is None:
                    first = next(items, None)
                    header = _checked(tuple(first.cells or ()) if first else (), self.uri)
                    items = itertools.chain([first] if first else [], items)
                yield header, _numbered(items)
                return
            if header is None:
                header = _header(next(chunks, None), self.uri)
            yield header, _records(chunks, header)


@dataclass(frozen=True)
class _Chunk:
    """Raw bytes of one or more whole CSV records (None when over the limit), and where they start."""

    offset: int
    line: int
    data: bytes | None
    lines: int


def _chunks(
    handle: BinaryIO, path: str, *, start: int, line: int, limit: int, quoting: bool = True
) -> Iterator[_Chunk]:
    """Cut the file into records at newlines outside quotes, holding at most ``limit`` bytes.

    A record ends at a newline after an even number of double quotes: in CSV a quote
    either opens or closes a quoted field, and an escaped quote is two. Parity counting
    runs at C speed and never needs more than one piece of the file in memory; a record
    longer than ``limit`` is skipped over, not read into memory, and reported as a row.
    A stray quote inside an unquoted field can join lines into one chunk; the CSV parser
    then splits them again (see :func:`_records`).
    """
    handle.seek(start)
    if start == 0 and handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        handle.seek(0)
    offset = chunk_offset = handle.tell()
    chunk_line = line
    pieces: list[bytes] = []
    size = lines = 0
    quoted = oversized = False
    while True:
        piece = handle.readline(_PIECE)
        if not piece:
            if quoted and (oversized or not _parses_strictly(b"".join(pieces))):
                raise InputError(f"{path}: a quoted field that starts on line {chunk_line} is never closed")
            if size:
                yield _Chunk(chunk_offset, chunk_line, None if oversized else b"".join(pieces), lines + 1)
            return
        offset += len(piece)
        size += len(piece)
        if quoting and piece.count(b'"') % 2:
            quoted = not quoted
        if not oversized:
            pieces.append(piece)
            if size > limit:
                oversized, pieces = True, []
        if piece.endswith(b"\n"):
            lines += 1
            if not quoted:
                yield _Chunk(chunk_offset, chunk_line, None if oversized else b"".join(pieces), lines)
                chunk_offset, chunk_line = offset, chunk_line + lines
                pieces, size, lines, oversized = [], 0, 0, False


def _parses_strictly(data: bytes) -> bool:
    """Whether a chunk left with an odd quote count is still CSV (its quotes are literal)."""
    try:
        list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline=""), strict=True))
    except csv.Error:
        return False
    return True


def _header(chunk: _Chunk | None, path: str) -> tuple[str, ...]:
    if chunk is None:
        raise InputError(f"{path} is empty: it needs a header with image_url and prompt")
    if chunk.data is None:
        raise InputError(f"{path}: line 1 (the header) is longer than any CSV row may be")
    try:
        text = chunk.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: line 1 (the header) is not UTF-8 text ({exc.reason})") from None
    try:
        parsed = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InputError(f"{path}: line 1 (the header) is not readable CSV: {exc}") from None
    header = tuple(name.strip() for name in parsed[0]) if parsed else ()
    _check_header(header, path)
    return header


def _records(chunks: Iterator[_Chunk], header: tuple[str, ...]) -> Iterator[tuple[int | None, Record]]:
    index = 0
    for chunk in chunks:
        if chunk.data is None:
            problem = (None, "is longer than the limit for one row (the largest image as a data URI, plus 1 MiB)")
            yield chunk.offset, Record(index, chunk.line, {}, problem=problem)
            index += 1
            continue
        text = chunk.data.decode("utf-8", "surrogateescape")
        if not text.strip(" \t\r\n,"):
            # Blank lines separate nothing and ask for nothing.
            continue
        body = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
        if '"' not in body and "\n" not in body and "\r" not in body:
            # One line, nothing quoted: the parser would only split at commas. Most rows
            # of a large input take this path, at a fraction of the parser's cost.
            plain = body.split(",")
            if any(cell.strip() for cell in plain):
                yield chunk.offset, _record(index, chunk.line, header, plain)
                index += 1
            continue
        reader = csv.reader(io.StringIO(text, newline=""))
        before = 0
        offset: int | None = chunk.offset
        while True:
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                yield offset, Record(index, chunk.line + before, {}, problem=(None, f"is not readable CSV: {exc}"))
                index += 1
                break
            if cells is None:
                break
            line, before = chunk.line + before, reader.line_num
            if any(cell.strip() for cell in cells):
                yield offset, _record(index, line, header, cells)
                index += 1
                offset = None  # later records of this chunk cannot start a shard
    return


def _numbered(items: Iterator[tabular.Item]) -> Iterator[tuple[int | None, Record]]:
    for index, item in enumerate(items):
        if item.cells is None:
            yield item.offset, Record(index, item.line, {}, problem=(None, item.problem or "is unusable"))
        else:
            yield item.offset, _mapped(index, item.line, item.cells)


def _mapped(index: int, line: int, cells: dict[str, str]) -> Record:
    """A record of named cells (JSON Lines, Parquet), checked like a CSV record's."""
    return _record(index, line, tuple(cells), list(cells.values()))


def _record(index: int, line: int, header: tuple[str, ...], cells: list[str]) -> Record:
    named = dict(zip(header, cells, strict=False))
    extra = max(0, len(cells) - len(header))
    if _UNUSABLE.search(" ".join(cells)) is None:
        return Record(index, line, named, extra=extra)  # the usual case: one search, not one per cell
    problem: tuple[str | None, str] | None = None
    for column, value in named.items():
        reason = _bad_text(value)
        if reason:
            problem = (column or None, reason)
            named[column] = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if problem is None:
        for value in cells[len(header) :]:
            reason = _bad_text(value)
            if reason:
                problem = (None, reason)
    return Record(index, line, named, extra=extra, problem=problem)


def _bad_text(value: str) -> str | None:
    """Why a cell's text cannot be used: bytes that are not UTF-8, or control characters."""
    match = _UNUSABLE.search(value)
    if match is None:
        return None
    char = match.group()
    if "\udc80" <= char <= "\udcff":
        return f"is not UTF-8 text (byte 0x{ord(char) - 0xDC00:02x} at character {match.start()})"
    return f"contains the control character U+{ord(char):04X} at character {match.start()}"


def _checked(header: tuple[str, ...], path: str) -> tuple[str, ...]:
    header = tuple(str(name).strip() for name in header)
    _check_header(header, path)
    return header


def _check_header(header: tuple[str, ...], path: str) -> None:
    if not header or not any(header):
        raise InputError(f"{path} is empty: it needs a header with image_url and prompt")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise InputError(f"{path} lacks the column(s) {', '.join(missing)} (columns found: {', '.join(header)})")
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            raise InputError(
                f"{path}: line 1 names the column {name!r} twice (columns {seen[name]} and {position}); "
                "which one to use is not clear"
            )
        seen[name] = position


class _IdIndex:
    """Which row first used each ``id`` and each output name, and for what work.

    Work is compared by a digest of the row's other cells. An ``id`` reused for other
    work is the later row's failure. Two different ids that make the same output name
    (ids are made safe as names first, see :func:`i2v.names.output_name`) are both kept:
    the later one's name gets a suffix drawn from its id, the same every time.
    """

    def __init__(self) -> None:
        self._first: dict[str, tuple[int, bytes]] = {}
        self._names: dict[str, str] = {}

    def check(self, record: Record) -> tuple[str | None, str | None]:
        """(why the row's id cannot be used, the output name it gets instead of the usual one)."""
        row_id = record.cells.get("id", "").strip()
        if not row_id:
            return None, None
        work = {k: v.strip() for k, v in record.cells.items() if k != "id"}
        digest = hashlib.blake2b(repr(sorted(work.items())).encode(), digest_size=12).digest()
        first = self._first.setdefault(row_id, (record.index, digest))
        if first[1] != digest:
            return f"{row_id!r} is already used by row {first[0]} for different work", None
        if first[0] != record.index:
            return None, None  # the same id for the same work: a duplicate row, named alike
        name = output_name(row_id)
        owner = self._names.setdefault(name, row_id)
        if owner == row_id:
            return None, None
        taken = disambiguated(name, row_id)
        self._names.setdefault(taken, row_id)
        return None, taken
