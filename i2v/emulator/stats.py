"""Counters the emulator keeps so that tests and benchmarks can see what happened."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: Every kind of injected fault, as counted in ``faults``: the scripted kinds (also
#: drawn at random where a rate exists: ``slow``, ``reset``, ``truncate``), then the
#: failures that only come at random.
INJECTED_KINDS: tuple[str, ...] = (
    "status",
    "timeout",
    "reset",
    "slow",
    "truncate",
    "rate_limit",
    "server_error",
    "lost_response",
    "job_error",
    "terminal_status",
    "status_variant",
    "off_spec",
)


@dataclass
class Stats:
    """Request and billing counters; job counts come from the scheduler."""

    #: Requests received on each kind of endpoint, whatever they were answered.
    creates: int = 0
    fetches: int = 0
    downloads: int = 0
    #: Requests to ``GET /v2/logs``, whatever they were answered.
    logs_requests: int = 0
    #: Requests to ``GET /models/metrics``, whatever they were answered.
    metrics_requests: int = 0
    #: Requests to ``GET /v1/models`` (and its other paths), whatever they were answered.
    catalogue_requests: int = 0
    #: Downloads answered with the whole file.
    downloads_served: int = 0
    bytes_served: int = 0
    #: Creates whose job was made and billed but whose answer never reached the client
    #: whole: an error instead, a connection cut mid-answer, or a client that hung up
    #: while the answer was held.
    lost_responses: int = 0
    #: Jobs made for a request body that had already made one: a create paid twice.
    billed_twice: int = 0
    #: Requests whose client hung up while their answer was held (a client timeout).
    client_hangups: int = 0
    credits_used: float = 0.0
    #: Answers by HTTP status, over the API and download endpoints.
    responses: Counter[int] = field(default_factory=Counter)
    #: Injected faults by kind (see :data:`INJECTED_KINDS`), and those of them scripted.
    #: A status word other than ``queued``/``generating`` counts once per answer.
    faults: Counter[str] = field(default_factory=Counter)
    faults_scripted: Counter[str] = field(default_factory=Counter)
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

    def note_fault(self, kind: str, *, scripted: bool = False) -> None:
        self.faults[kind] += 1
        if scripted:
            self.faults_scripted[kind] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "creates": self.creates,
            "fetches": self.fetches,
            "downloads": self.downloads,
            "logs_requests": self.logs_requests,
            "metrics_requests": self.metrics_requests,
            "catalogue_requests": self.catalogue_requests,
            "downloads_served": self.downloads_served,
            "bytes_served": self.bytes_served,
            "lost_responses": self.lost_responses,
            "billed_twice": self.billed_twice,
            "client_hangups": self.client_hangups,
            "credits_used": self.credits_used,
            "responses": {str(status): count for status, count in sorted(self.responses.items())},
            "faults": {kind: self.faults[kind] for kind in INJECTED_KINDS},
            "faults_scripted": {kind: self.faults_scripted[kind] for kind in INJECTED_KINDS},
            "first_create_at": self.first_create_at,
            "last_download_at": self.last_download_at,
            "started_at": self.started_at,
        }
