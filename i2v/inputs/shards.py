"""Cutting an input into shards: bounded runs of consecutive rows, found by byte offset.

Any process, here or on another worker, can read just its shard's rows without reading
what comes before. :func:`plan` makes one pass over the file (parsing, not validating)
to find the shard boundaries, count the rows and catch ids reused for different work
across the whole file; :func:`read_records` reads one shard's records. Nothing here holds
more than one record at a time, except the plan's id index, which lives only while
planning, and the models named by rows that have a ``models`` cell.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from i2v.errors import InputChanged, InputError
from i2v.inputs import comparison
from i2v.inputs.csv_reader import ROW_INDEX_COLUMN, Reading, Record
from i2v.inputs.safe_names import disambiguated, output_name
from i2v.inputs.sources import Format, InputVersion, Opener, input_format, input_version, open_local
from i2v.limits import Limits


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
    #: Row index → the models its ``models`` cell names (rows with one only; see :mod:`i2v.inputs.comparison`).
    row_models: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def outcomes(self, run_pairs: int) -> int:
        """Outcomes the shard's rows make when a row without a ``models`` cell makes ``run_pairs``."""
        own = sum(max(1, len(models)) for models in self.row_models.values())
        return (self.rows - len(self.row_models)) * run_pairs + own


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
    #: The input's own column names for ours (``--image-col``, ``--prompt-col``).
    columns: Mapping[str, str] = field(default_factory=dict)
    #: The version of the input the plan was made from (:func:`~i2v.inputs.sources.input_version`).
    version: InputVersion | None = None
    #: Rows with a ``models`` cell, the outcomes they make, and the models they name (first seen first).
    cell_rows: int = 0
    cell_pairs: int = 0
    cell_models: tuple[str, ...] = ()

    def outcomes(self, run_pairs: int) -> int:
        """Outcomes the whole input makes when a row without a ``models`` cell makes ``run_pairs``."""
        return (self.total_rows - self.cell_rows) * run_pairs + self.cell_pairs

    def only(self, shard: Shard) -> InputPlan:
        """This plan reduced to one shard: what a shard's own flow run needs to know."""
        return replace(self, shards=(shard,))


def plan(
    path: str | Path,
    *,
    rows_per_shard: int,
    limits: Limits | None = None,
    format: str | None = None,
    opener: Opener = open_local,
    columns: Mapping[str, str] | None = None,
) -> InputPlan:
    """One pass over the input: its header, row count and shard boundaries.

    ``format`` is ``csv``, ``jsonl`` or ``parquet`` (default: from the extension);
    ``opener`` opens the URI (local files by default; see :mod:`i2v.inputs.sources` for S3).
    """
    if rows_per_shard < 1:
        raise InputError(f"rows per shard must be at least 1, got {rows_per_shard}")
    limits = limits or Limits()
    source = str(path)
    fmt = input_format(source, format)
    shards: list[Shard] = []
    ids = _IdIndex()
    version = input_version(source, opener)
    renamed = dict(columns or {})
    reading = Reading(source, fmt, opener, limits.max_row_bytes, renamed)
    with reading.open(offset=None, line=1) as (header, records):
        start: tuple[int, int, int] | None = None  # (first row, offset, line)
        conflicts: dict[int, str] = {}
        names: dict[int, str] = {}
        own: dict[int, tuple[str, ...]] = {}
        cell_pairs = 0
        cell_models: dict[str, None] = {}
        count = 0
        for offset, record in records:
            if count == limits.max_rows:
                raise InputError(
                    f"{source} has more than {limits.max_rows:,} rows (the limit for one run; "
                    "--max-rows raises it, or split the file)"
                )
            if start is None or (offset is not None and count - start[0] >= rows_per_shard):
                if start is not None:
                    shards.append(
                        Shard(len(shards), start[0], count - start[0], start[1], start[2], conflicts, names, own)
                    )
                    conflicts, names, own = {}, {}, {}
                # Only a record that starts a chunk of the file can start a shard.
                assert offset is not None
                start = (record.index, offset, record.line)
            conflict, name = ids.check(record)
            if conflict:
                conflicts[record.index] = conflict
            if name:
                names[record.index] = name
            models = comparison.cell_models(record.cells)
            if models is not None:
                own[record.index] = models
                cell_pairs += max(1, len(models))
                if len(models) > 1:
                    cell_models.update(dict.fromkeys(models))
            count += 1
        if start is not None:
            shards.append(Shard(len(shards), start[0], count - start[0], start[1], start[2], conflicts, names, own))
    cell_rows = sum(len(shard.row_models) for shard in shards)
    return InputPlan(
        source,
        header,
        count,
        tuple(shards),
        limits.max_row_bytes,
        fmt,
        columns=renamed,
        version=version,
        cell_rows=cell_rows,
        cell_pairs=cell_pairs,
        cell_models=tuple(cell_models),
    )


def read_records(input_plan: InputPlan, shard: Shard, *, opener: Opener = open_local) -> Iterator[Record]:
    """The records of one shard, read from its offset.

    Raises :class:`InputChanged` if the input is not the version the plan was made from,
    before the first record or after the last (which was then read from another file).
    """
    check_unchanged(input_plan, opener)
    reading = Reading(input_plan.path, input_plan.format, opener, input_plan.max_row_bytes, dict(input_plan.columns))
    with reading.open(offset=shard.offset, line=shard.line, header=input_plan.header) as (_, records):
        for count, (_, record) in enumerate(records):
            if count == shard.rows:
                break
            yield replace(record, index=shard.first_row + count)
    check_unchanged(input_plan, opener)


def check_unchanged(input_plan: InputPlan, opener: Opener = open_local) -> None:
    """Raise :class:`InputChanged`, naming the file, if the input is no longer the one the plan was made from."""
    if input_plan.version is None:
        return
    now = input_version(input_plan.path, opener)
    if input_plan.version.differs(now):
        raise InputChanged(
            f"{input_plan.path} changed after the run planned it ({input_plan.version} then, {now or 'missing'} now):"
            " its rows no longer line up with the plan; run it again"
        )


class _IdIndex:
    """Which row first used each ``id`` and each output name, and for what work.

    Work is compared by a digest of the row's other cells. An ``id`` reused for other
    work is the later row's failure. Two different ids that make the same output name
    (ids are made safe as names first, see :func:`i2v.inputs.safe_names.output_name`) are both kept:
    the later one's name gets a suffix drawn from its id, the same every time.
    """

    def __init__(self) -> None:
        # id -> (its first row's place, that row's index as shown, a digest of its work)
        self._first: dict[str, tuple[int, int, bytes]] = {}
        self._names: dict[str, str] = {}

    def check(self, record: Record) -> tuple[str | None, str | None]:
        """(why the row's id cannot be used, the output name it gets instead of the usual one)."""
        row_id = record.cells.get("id", "").strip()
        if not row_id:
            return None, None
        work = {k: v.strip() for k, v in record.cells.items() if k not in ("id", ROW_INDEX_COLUMN)}
        digest = hashlib.blake2b(repr(sorted(work.items())).encode(), digest_size=12).digest()
        first = self._first.setdefault(row_id, (record.index, record.shown_index, digest))
        if first[2] != digest:
            return f"{row_id!r} is already used by row {first[1]} for different work", None
        if first[0] != record.index:
            return None, None  # the same id for the same work: a duplicate row, named alike
        name = output_name(row_id)
        owner = self._names.setdefault(name, row_id)
        if owner == row_id:
            return None, None
        taken = disambiguated(name, row_id)
        self._names.setdefault(taken, row_id)
        return None, taken
