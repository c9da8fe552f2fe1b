"""Counters the emulator keeps so that tests and benchmarks can see what happened."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """Request and billing counters; job counts come from the scheduler."""

    #: Requests received on each kind of endpoint, whatever they were answered.
    creates: int = 0
    fetches: int = 0
    downloads: int = 0
    #: Downloads answered with the file.
    downloads_served: int = 0
    bytes_served: int = 0
    #: Creates whose job was made and billed but whose answer was an error.
    lost_responses: int = 0
    credits_used: float = 0.0
    #: Answers by HTTP status, over the API and download endpoints.
    responses: Counter[int] = field(default_factory=Counter)
    first_create_at: float | None = None
    last_download_at: float | None = None
    started_at: float = field(default_factory=time.time)

    def note_create(self) -> None:
        self.creates += 1
        if self.first_create_at is None:
            self.first_create_at = time.time()

    def note_download(self, size: int) -> None:
        self.downloads_served += 1
        self.bytes_served += size
        self.last_download_at = time.time()

    def to_json(self) -> dict[str, Any]:
        return {
            "creates": self.creates,
            "fetches": self.fetches,
            "downloads": self.downloads,
            "downloads_served": self.downloads_served,
            "bytes_served": self.bytes_served,
            "lost_responses": self.lost_responses,
            "credits_used": self.credits_used,
            "responses": {str(status): count for status, count in sorted(self.responses.items())},
            "first_create_at": self.first_create_at,
            "last_download_at": self.last_download_at,
            "started_at": self.started_at,
        }
