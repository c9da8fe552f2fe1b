"""Records: the latest outcome of each piece of work, written the moment it is known.

``records/<key>.json`` holds the manifest row of the last time a row key finished in this
destination (its video stored, or its failure). Rows are written as they finish, so a
crash loses nothing that was known, and a rerun reads them to skip work already done:
a completed record counts only while its video is still stored at the recorded size.
"""

from __future__ import annotations

import logging

from i2v.engine.offload import Runs
from i2v.errors import StorageError
from i2v.outcomes import RowOutcome
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

RECORDS_PREFIX = "records/"


class Records:
    """Outcome records kept under a destination; storage calls run through ``offload``."""

    def __init__(self, dest: Destination, offload: Runs) -> None:
        self.dest = dest
        self._offload = offload

    async def save(self, outcome: RowOutcome) -> None:
        assert outcome.row_key is not None, "only valid rows have records"
        data = outcome.to_json().encode()
        await self._offload(self.dest.put_bytes, record_key(outcome.row_key), data, "application/json")

    async def load(self, row_key: str) -> RowOutcome | None:
        return await self._offload(self.read, row_key)

    def read(self, row_key: str) -> RowOutcome | None:
        """The record of ``row_key``, read in the calling thread."""
        return read_record(self.dest, row_key)

    async def video_intact(self, record: RowOutcome) -> bool:
        """Whether the record's video is still stored at its recorded size."""
        if not record.video_uri or record.video_bytes is None:
            return False
        key = self.dest.key_for(record.video_uri)
        if key is None:
            return False
        size = await self._offload(self.dest.size, key)
        return size == record.video_bytes


def read_record(dest: Destination, row_key: str) -> RowOutcome | None:
    """The record of ``row_key`` in ``dest``; None if there is none, or it cannot be read."""
    try:
        raw = dest.get_bytes(record_key(row_key))
        return RowOutcome.from_json(raw) if raw is not None else None
    except (StorageError, ValueError, TypeError) as exc:
        log.warning("ignoring unreadable record for %s: %s", row_key, exc)
        return None


def record_key(row_key: str) -> str:
    """Where the record of ``row_key`` lives under the destination."""
    return f"{RECORDS_PREFIX}{row_key}.json"
