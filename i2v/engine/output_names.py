"""Which name a row's outputs get in the destination: one that no other work's outputs have.

A row's ``name`` (its ``id`` made safe, :mod:`i2v.inputs.safe_names`) names its video,
``videos/<name>.mp4``, and its thumbnail. Within one input an id is never reused for other
work (:mod:`i2v.inputs.shards`), but a later run may bring an id back with another prompt
or other parameters: that is other work (another row key), and storing it must not
overwrite the first work's video while the destination's manifest still points at it.

So the first work to store under a name owns it: ``names/<name>.json`` holds its row key,
written with a conditional write (of runs racing for a name, exactly one gets it). Other
work stores under ``<name>-<first 8 hex digits of its row key>`` (under the whole key in
the unlikely case that is taken too), so both videos survive and each manifest row points
at its own file.

A row named by its own key (no ``id`` given) needs no such object: no other work has its
key. Videos stored before names were owned have no object: a name whose video exists is
taken as another work's, unless this row's own record points at it.
"""

from __future__ import annotations

import json

from i2v.engine.download import video_key
from i2v.engine.records import read_record
from i2v.errors import StorageError
from i2v.inputs.row import Row
from i2v.storage.destination import Destination

NAMES_PREFIX = "names/"
#: Hex digits of the row key that tell a later work's name from the first one's.
KEY_DIGITS = 8


class OutputNames:
    """Output names owned in a destination. Blocking: called off the event loop."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest

    def choose(self, row: Row) -> str:
        """The name to store the row's outputs under, owned by its row key from now on."""
        if row.name == row.key:
            return row.name
        for name in _candidates(row):
            if self._take(name, row):
                return name
        raise StorageError(f"every output name for row key {row.key} belongs to other work", retryable=False)

    def owned(self, row: Row) -> str | None:
        """The name an earlier run stored the row's outputs under, if it owns one (nothing is taken)."""
        if row.name == row.key:
            return row.name
        for name in _candidates(row):
            if self._owner(name) == row.key:
                return name
        return None

    def _take(self, name: str, row: Row) -> bool:
        owner = self._owner(name)
        if owner is not None:
            return owner == row.key
        if self.dest.size(video_key(name)) is not None and not self._recorded_at(row, name):
            return False  # a video stored before names were owned, by other work
        body = json.dumps({"row_key": row.key, "name": name}).encode()
        if self.dest.put_if_absent(name_key(name), body, "application/json"):
            return True
        return self._owner(name) == row.key

    def _owner(self, name: str) -> str | None:
        """The row key owning ``name``; None if none does ("" if its object cannot be read: someone's)."""
        raw = self.dest.get_bytes(name_key(name))
        if raw is None:
            return None
        try:
            return str(json.loads(raw)["row_key"])
        except (ValueError, KeyError, TypeError):
            return ""

    def _recorded_at(self, row: Row, name: str) -> bool:
        """Whether the row's own record (from before names were owned) points at the video named ``name``."""
        record = read_record(self.dest, row.key)
        uri = record.video_uri if record is not None else None
        return uri is not None and self.dest.key_of(uri) == video_key(name)


def _candidates(row: Row) -> tuple[str, ...]:
    return (row.name, f"{row.name}-{row.key[:KEY_DIGITS]}", f"{row.name}-{row.key}")


def name_key(name: str) -> str:
    """Where the owner of output name ``name`` is written."""
    return f"{NAMES_PREFIX}{name}.json"
