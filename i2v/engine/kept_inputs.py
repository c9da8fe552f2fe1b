"""Input images copied into the destination, once per image.

A local or inline image is copied to ``inputs/`` in the destination when its row is
first looked at, so the manifest can name it and a re-run needs nothing but the
destination. Recent images are remembered, so a run that reuses a few images asks the
destination about each only once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from i2v.inputs.row import Row, sniff_image_type
from i2v.storage.destination import Destination

#: Input images remembered as already copied into the destination.
KEPT_INPUTS_REMEMBERED = 4096


class KeptInputs:
    """Copies rows' input images into a destination; safe to call from several threads."""

    def __init__(self, dest: Destination) -> None:
        self._dest = dest
        self._kept: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, row: Row) -> None:
        """Copy the row's image into the destination unless it is there (blocking)."""
        key = row.image_key
        if key is None:
            return
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return
        if self._dest.size(key) is None:
            data = row.image_bytes()
            if data is not None:
                self._dest.put_bytes(key, data, sniff_image_type(data) or "application/octet-stream")
        with self._lock:
            self._kept[key] = None
            while len(self._kept) > KEPT_INPUTS_REMEMBERED:
                self._kept.popitem(last=False)
