"""Reading an input as a stream of records: CSV here, JSON Lines and Parquet through :mod:`~i2v.inputs.jsonl_parquet`.

A CSV file is cut at newlines outside quotes before it is parsed, so a record of any
size costs at most one row's limit; a record that cannot be a row (too long, not UTF-8,
control characters) carries its problem instead of its cells. :class:`Reading` reads
from the start or from a byte offset (a shard's). Nothing here holds more than one
record at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from i2v.errors import InputError
from i2v.inputs import jsonl_parquet as tabular
from i2v.inputs.sources import Format, Opener, input_format, open_local
from i2v.limits import Limits

REQUIRED_COLUMNS = ("image_url", "prompt")
#: A hidden column of the input ``i2v rerun`` writes (:mod:`i2v.inputs.from_manifest`): each
#: row's ``row_index`` in the manifest it came from, which its outcome keeps. Not a
#: parameter, and not part of the work a row asks for.
ROW_INDEX_COLUMN = "_i2v_row_index"
#: Bytes read from the file at a time: a longer line is read in pieces of this size.
_PIECE = 1 << 20
#: Characters no cell may hold: NUL and the other C0/C1 controls except tab, CR and LF,
#: and the stand-ins for bytes that were not UTF-8 (``surrogateescape``).
_UNUSABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udcff]")
# A row's size is bounded before the parser sees it (see _chunks), so the parser's own
# per-field limit must not cut in first.
csv.field_size_limit(1 << 62)


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

    @property
    def shown_index(self) -> int:
        """The row index its outcome carries: the manifest's (:data:`ROW_INDEX_COLUMN`) for a rerun's row, else its own.

        ``index`` stays the record's place in this input, which tells its rows apart.
        """
        given = self.cells.get(ROW_INDEX_COLUMN, "").strip()
        return int(given) if given.isascii() and given.isdigit() else self.index


def read_header(
    path: str | Path,
    *,
    format: str | None = None,
    opener: Opener = open_local,
    columns: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The input's column names; raises :class:`InputError` if the file is not usable."""
    source = str(path)
    reading = Reading(source, input_format(source, format), opener, Limits().max_row_bytes, dict(columns or {}))
    with reading.open(offset=None, line=1) as (header, _):
        return header


def all_records(
    path: str | Path,
    *,
    limits: Limits | None = None,
    format: str | None = None,
    opener: Opener = open_local,
    columns: Mapping[str, str] | None = None,
) -> Iterator[Record]:
    """Every record of an input, in order."""
    source = str(path)
    max_row = (limits or Limits()).max_row_bytes
    reading = Reading(source, input_format(source, format), opener, max_row, dict(columns or {}))
    with reading.open(offset=None, line=1) as (_, records):
        for _, record in records:
            yield record


@dataclass(frozen=True)
class Reading:
    """How to read one input: where, in which format, through what, with which row limit."""

    uri: str
    format: Format
    opener: Opener
    max_row_bytes: int
    #: The input's own column names for ours (``{"img": "image_url"}``), from ``--image-col`` and the like.
    columns: Mapping[str, str] = field(default_factory=dict)

    @contextmanager
    def open(
        self, *, offset: int | None, line: int, header: tuple[str, ...] | None = None
    ) -> Iterator[tuple[tuple[str, ...], Iterator[tuple[int | None, Record]]]]:
        """The header and an iterator of (offset, record); file problems become one InputError.

        The offset is where a shard starting at that record begins: a byte offset for CSV
        and JSON Lines, a row number for Parquet; None where no shard may start.
        """
        with self.opener(self.uri) as handle:
            names = self.columns
            if self.format == "parquet":
                with tabular.parquet(handle, self.uri, start=offset or 0) as (found, rows):
                    header = header or _checked(found, self.uri, names)
                    yield (
                        header,
                        ((number, _mapped(number, number + 1, _renamed(cells, names))) for number, cells in rows),
                    )
                return
            # JSON escapes its quotes with a backslash: a JSON line ends at its newline.
            quoting = self.format == "csv"
            start = 0 if offset is None else offset
            chunks = _chunks(handle, self.uri, start=start, line=line, limit=self.max_row_bytes, quoting=quoting)
            if self.format == "jsonl":
                items = tabular.json_lines(chunks)
                if header is None:
                    first = next(items, None)
                    header = _checked(tuple(first.cells or ()) if first else (), self.uri, names)
                    items = itertools.chain([first] if first else [], items)
                yield header, _numbered(items, names)
                return
            if header is None:
                header = _header(next(chunks, None), self.uri, names)
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


def _header(chunk: _Chunk | None, path: str, names: Mapping[str, str]) -> tuple[str, ...]:
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
    return _checked(tuple(parsed[0]) if parsed else (), path, names)


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


def _numbered(items: Iterator[tabular.Item], names: Mapping[str, str]) -> Iterator[tuple[int | None, Record]]:
    for index, item in enumerate(items):
        if item.cells is None:
            yield item.offset, Record(index, item.line, {}, problem=(None, item.problem or "is unusable"))
        else:
            yield item.offset, _mapped(index, item.line, _renamed(item.cells, names))


def _renamed(cells: dict[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """A record's cells under our column names (``names``: theirs to ours)."""
    return {names.get(name, name): value for name, value in cells.items()} if names else cells


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


def _checked(header: tuple[str, ...], path: str, names: Mapping[str, str]) -> tuple[str, ...]:
    """The header under our column names, checked; names the input lacks are errors."""
    header = tuple(str(name).strip() for name in header)
    absent = [theirs for theirs in names if theirs not in header]
    if absent:
        found = ", ".join(header)
        raise InputError(f"{path} has no column {absent[0]!r} to read as {names[absent[0]]} (columns found: {found})")
    header = tuple(names.get(name, name) for name in header)
    _check_header(header, path)
    return header


def _delimiter_hint(header: tuple[str, ...]) -> str | None:
    """A hint when the header line looks separated by something other than commas."""
    if len(header) != 1:
        return None
    for mark, name in (("\t", "tabs"), (";", "semicolons"), ("|", "bars")):
        if mark in header[0]:
            return (
                f"its header line is separated by {name}: save it as comma-separated CSV"
                " (or as JSON Lines or Parquet, --format)"
            )
    return None


def _check_header(header: tuple[str, ...], path: str) -> None:
    if not header or not any(header):
        raise InputError(f"{path} is empty: it needs a header with image_url and prompt")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        hint = _delimiter_hint(header)
        options = " or ".join(f"--{name.replace('_url', '').replace('_', '-')}-col NAME" for name in missing)
        raise InputError(
            f"{path} lacks the column(s) {', '.join(missing)} (columns found: {', '.join(header)}); "
            + (hint or f"name yours with {options}")
        )
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            raise InputError(
                f"{path}: line 1 names the column {name!r} twice (columns {seen[name]} and {position}); "
                "which one to use is not clear"
            )
        seen[name] = position
