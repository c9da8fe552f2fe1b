"""Which row of a merge stands for each row key, decided a batch of rows at a time.

Rows are numbered in the order they are added. A key's row is its latest that did
something (completed or failed), or its latest skip if it was only ever skipped; its
attempts are the sum over its rows. Keys come out in order of first appearance; rows
without a key are not work.

Only the row key, the status and the attempts of each row are looked at. What is kept is
every key once (its number is its place among them) and three numbers per key; a batch
is looked up among the keys seen so far and folded in, so memory grows with the keys,
not with the rows added nor with the other columns of the tables they come from.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

#: Statuses that say what happened to the work (a skip only points elsewhere).
DONE_SOMETHING = ("completed", "failed")


class Decision:
    """The rows added so far, reduced to the row that stands for each key and its attempts."""

    def __init__(self) -> None:
        #: Every key so far, in order of first appearance: a key's number is its place here.
        self._keys: list[pa.Array] = []
        self._seen = 0
        self._rows = 0
        # By key number: its latest row, its latest row that did something, its attempts.
        self._latest = pa.array([], pa.int64())
        self._acted = pa.array([], pa.int64())
        self._attempts = pa.array([], pa.int64())

    @property
    def keys_seen(self) -> int:
        return self._seen

    def numbers(self, keys: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """Each key's number (null: not seen yet, or no key)."""
        seen = pa.chunked_array(self._keys, pa.large_string())
        numbers = pc.cast(pc.index_in(as_text(keys), value_set=seen), pa.int64())
        give_back()
        return numbers

    def add(self, keys: pa.Array | pa.ChunkedArray, status: pa.Array | pa.ChunkedArray, attempts: pa.Array) -> None:
        """The next batch of rows: their keys, statuses and how many runs worked on each.

        Each call looks the keys up among every key seen so far: a batch of some thousand
        rows at a time costs little more than one row at a time.
        """
        numbers = self._number(as_text(keys))
        position = pa.array(range(self._rows, self._rows + len(numbers)), pa.int64())
        self._rows += len(numbers)
        acted = pc.is_in(as_text(status), value_set=pa.array(DONE_SOMETHING, pa.large_string()))
        rows = pa.table(
            {
                "key": numbers,
                "latest": position,
                "acted": pc.if_else(acted, position, pa.scalar(None, pa.int64())),
                "attempts": pc.cast(attempts, pa.int64()),
            }
        )
        by_key = rows.filter(pc.is_valid(numbers)).group_by("key", use_threads=False)
        folded = by_key.aggregate([("latest", "max"), ("acted", "max"), ("attempts", "sum")])
        # The batch's outcome for every key number so far (null: the key has no row here).
        here = pc.index_in(pa.array(range(self._seen), pa.int64()), value_set=folded.column("key"))
        # A batch's rows come after every row before it: its latest rows are the latest.
        self._latest = whole(pc.coalesce(folded.column("latest_max").take(here), self._padded(self._latest)))
        self._acted = whole(pc.coalesce(folded.column("acted_max").take(here), self._padded(self._acted)))
        more = pc.fill_null(folded.column("attempts_sum").take(here), 0)
        self._attempts = whole(pc.add(more, pc.fill_null(self._padded(self._attempts), 0)))

    def winners(self) -> tuple[pa.Array, pa.Array]:
        """The row standing for each key (its number among all rows added), and the key's attempts, keys in order."""
        self._keys = []  # no longer needed: the biggest column here
        give_back()
        return pc.coalesce(self._acted, self._latest), self._attempts

    def _number(self, keys: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """Each key's number; a new key is numbered after every key seen before, in order of first appearance."""
        seen = self._seen
        numbers = self.numbers(keys) if seen else pa.nulls(len(keys), pa.int64())
        fresh = pc.and_(pc.is_valid(keys), pc.is_null(numbers))
        if not pc.any(fresh).as_py():
            return numbers
        everyone = pc.all(fresh).as_py()
        encoded = pc.dictionary_encode(keys if everyone else keys.filter(fresh))
        parts = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
        new = parts[-1].dictionary  # every key of every chunk, in order of first appearance
        self._keys.append(new)
        self._seen += len(new)
        among = pc.add(pa.concat_arrays([pc.cast(part.indices, pa.int64()) for part in parts]), seen)
        return among if everyone else pc.replace_with_mask(whole(numbers), whole(fresh), among)

    def _padded(self, column: pa.Array) -> pa.Array:
        """``column`` with a null for each key that is new since it was made."""
        return pa.concat_arrays([column, pa.nulls(self._seen - len(column), column.type)])


def give_back() -> None:
    """Hand the memory pool's free pages back to the system now, not in a while.

    pyarrow's default allocator (mimalloc) keeps freed pages for a while before returning
    them; a merge frees one hash table of every key after another, and without this the
    process keeps several of them resident at once. A call costs microseconds.
    """
    pa.default_memory_pool().release_unused()


def as_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text as ``large_string``, whichever type the file's writer gave it, so that columns compare alike."""
    return column.cast(pa.large_string())


def whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array, however many chunks ``column`` has."""
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
