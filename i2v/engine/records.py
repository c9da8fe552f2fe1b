"""Records: the latest outcome of each piece of work, written the moment it is known.

``records/<key>.json`` holds the manifest row of the last time a row key finished in this
destination (its video stored, or its failure). Rows are written as they finish, so a
crash loses nothing that was known, and a rerun reads them to skip work already done:
a completed record counts only while its video is still stored as recorded, at its size
and with its SHA-256 (read back as a stream).

Each record carries a SHA-256 of its content, as the journal's entries do: a record
written in part (a torn write, a disk that filled up under it) is known as such and read
as :class:`Torn` ("something was recorded here: look the job up again"), never as "no work
was done". Records written before they were sealed are read as they are. A record that
cannot be read at all (the destination failing) raises :class:`~i2v.errors.StorageError`:
the caller tries again, then fails the row, rather than redo work that may be done.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from i2v.engine.offload import Runs
from i2v.errors import StorageError
from i2v.outcomes import RowOutcome
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

RECORDS_PREFIX = "records/"


@dataclass(frozen=True)
class Torn:
    """A record that is there but cannot be read whole: something was recorded, what is unknown."""

    row_key: str
    reason: str


class Records:
    """Outcome records kept under a destination; storage calls run through ``offload``."""

    def __init__(self, dest: Destination, offload: Runs) -> None:
        self.dest = dest
        self._offload = offload

    async def save(self, outcome: RowOutcome) -> None:
        assert outcome.row_key is not None, "only valid rows have records"
        await self._offload(self.dest.put_bytes, record_key(outcome.row_key), seal(outcome), "application/json")

    async def load(self, row_key: str) -> RowOutcome | Torn | None:
        return await self._offload(self.read, row_key)

    def read(self, row_key: str) -> RowOutcome | Torn | None:
        """The record of ``row_key``, read in the calling thread; None if there is none.

        Raises :class:`StorageError` if the destination cannot say.
        """
        return _read(self.dest, row_key)

    async def stored_video(self, record: RowOutcome) -> str | None:
        """The key of the record's video if it is still stored as recorded (size, then SHA-256); else None.

        Raises :class:`StorageError` when that cannot be checked: not knowing is not "not done".
        """
        if not record.video_uri or record.video_bytes is None:
            return None
        key = self.dest.key_of(record.video_uri)
        if key is None:
            return None
        if await self._offload(self.dest.size, key) != record.video_bytes:
            return None
        if record.video_sha256 is None:
            return key
        return key if await self._offload(self.dest.sha256, key) == record.video_sha256 else None


def seal(outcome: RowOutcome) -> bytes:
    """A record's bytes: the outcome and a SHA-256 of it, so that a record written in part is known as such."""
    body = outcome.to_json()
    return json.dumps({"record": json.loads(body), "sha256": hashlib.sha256(body.encode()).hexdigest()}).encode()


def unseal(raw: bytes) -> RowOutcome:
    """The outcome in a record; ValueError when it is not whole. Older, unsealed records are taken as they are."""
    data: dict[str, Any] = json.loads(raw)
    if "record" in data and "sha256" in data:
        body = json.dumps(data["record"], sort_keys=True)
        if hashlib.sha256(body.encode()).hexdigest() != data["sha256"]:
            raise ValueError("its checksum does not match its content")
        data = data["record"]
    if not isinstance(data, dict):
        raise TypeError(f"a record is a JSON object, not {type(data).__name__}")
    return RowOutcome.from_dict(data)


def read_record(dest: Destination, row_key: str) -> RowOutcome | None:
    """The record of ``row_key`` in ``dest``, for a reader that can do without it; None if it cannot be read."""
    try:
        record = _read(dest, row_key)
    except StorageError as exc:
        log.warning("ignoring unreadable record for %s: %s", row_key, exc)
        return None
    return record if isinstance(record, RowOutcome) else None


def _read(dest: Destination, row_key: str) -> RowOutcome | Torn | None:
    raw = dest.get_bytes(record_key(row_key))
    if raw is None:
        return None
    try:
        return unseal(raw)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("record of %s is torn (%s): its work is looked up again", row_key, exc)
        return Torn(row_key, str(exc))


def record_key(row_key: str) -> str:
    """Where the record of ``row_key`` lives under the destination."""
    return f"{RECORDS_PREFIX}{row_key}.json"
