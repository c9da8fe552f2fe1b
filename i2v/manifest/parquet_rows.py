"""Rows of Parquet files taken by position, a row group at a time.

Merging manifests picks rows out of several files laid end to end. Each file is decoded
one row group at a time, never whole, and the group last decoded is kept: in the usual
cases (a first run, a rerun of the same input, rows appended) the rows wanted come in
file order, so each group is decoded once. Rows wanted out of order cost a group's
decoding each time they need it again, never more memory.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import pairwise

import pyarrow as pa
import pyarrow.parquet as pq

from i2v.manifest.run_table import conform


class Source:
    """A Parquet file read by row number; the row group last decoded is kept."""

    def __init__(self, file: pq.ParquetFile) -> None:
        self.file = file
        starts = [0]
        for group in range(file.metadata.num_row_groups):
            starts.append(starts[-1] + file.metadata.row_group(group).num_rows)
        #: The first row of each row group, and after them the number of rows.
        self._starts = starts
        self._kept: tuple[int, pa.Table] | None = None

    @property
    def num_rows(self) -> int:
        return self._starts[-1]

    def locate(self, row: int) -> tuple[int, int]:
        """The row group holding ``row``, and the row's number within it."""
        group = bisect_right(self._starts, row) - 1
        return group, row - self._starts[group]

    def row_group(self, group: int) -> pa.Table:
        if self._kept is None or self._kept[0] != group:
            self._kept = None  # freed before the next group is decoded, not after
            self._kept = (group, self.file.read_row_group(group, use_threads=False))
        return self._kept[1]


def gather(sources: Sequence[Source], positions: Sequence[int], schema: pa.Schema) -> pa.Table:
    """The rows at ``positions`` of ``sources`` laid end to end, in that order, in ``schema``'s columns.

    Each row group is decoded once per call, the groups in file order; a group's rows are
    taken, then every row put in its place.
    """
    starts = [0]
    for source in sources:
        starts.append(starts[-1] + source.num_rows)
    wanted: dict[tuple[int, int], list[int]] = {}
    places = []
    for position in positions:
        which = bisect_right(starts, position) - 1
        group, row = sources[which].locate(position - starts[which])
        rows = wanted.setdefault((which, group), [])
        places.append(((which, group), len(rows)))
        rows.append(row)
    pieces, offsets, taken = [], {}, 0
    for (which, group), rows in sorted(wanted.items()):
        table = sources[which].row_group(group)
        ascending = all(later == earlier + 1 for earlier, later in pairwise(rows))
        piece = table.slice(rows[0], len(rows)) if ascending else table.take(rows)
        pieces.append(conform(piece, schema))
        offsets[which, group] = taken
        taken += len(rows)
    if not pieces:
        return schema.empty_table()
    gathered = pa.concat_tables(pieces)
    order = [offsets[key] + index for key, index in places]
    in_place = all(number == index for index, number in enumerate(order))
    return gathered if in_place else gathered.take(order)
