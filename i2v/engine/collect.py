"""A finished job's video collected: stored under a name of its own, and the row's completed outcome.

:class:`VideoCollector` stores the video of a finished job under a name no other work
has (:mod:`~i2v.engine.output_names`) through :func:`~i2v.engine.download.store_video`:
a re-attached job's video that an earlier run stored (and died before recording) is
kept; a download URL that has expired is asked of the generation again, at most
:data:`URL_REFRESHES` times; transient failures are tried again. :func:`completed` is
the outcome of a row whose video is stored and verified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from i2v import outcomes
from i2v.api.client import VideoApi
from i2v.api.downloads import DownloadRules
from i2v.engine import jobs
from i2v.engine.download import Stored, inspect_stored, store_video
from i2v.engine.jobs import Finished
from i2v.engine.offload import Offload, Patient
from i2v.engine.output_names import OutputNames
from i2v.engine.resume import Resume
from i2v.engine.retry import Backoff, call_with_retries, is_transient
from i2v.errors import DownloadError, InvalidVideo
from i2v.inputs.row import Row
from i2v.media.mismatch import describe
from i2v.outcomes import Origin, RowOutcome
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

#: Threads writing and decoding videos, apart from the journal's, so a wave of downloads
#: never delays the journal write that stands between a freed slot and the next create.
TRANSFER_THREADS = 4
#: Download URLs answering these have expired (or were refused): the generation is asked for a new one.
_EXPIRED = frozenset({403, 404, 410})
#: Times a row asks its generation for a fresh video URL before it gives up.
URL_REFRESHES = 2


@dataclass
class VideoCollector:
    """Stores finished videos for a whole run, at most ``max_transfers`` at once, on threads of their own."""

    api: VideoApi
    downloads: httpx.AsyncClient
    dest: Destination
    rules: DownloadRules
    max_transfers: int
    #: Destination calls (choosing a name, looking for an earlier copy), tried again while it is unreachable.
    patient: Patient
    #: Where a generation the provider no longer has is forgotten.
    resume: Resume
    sleep: Callable[[float], Awaitable[None]]
    backoff: Backoff
    _names: OutputNames = field(init=False)
    _transfers: Offload = field(init=False)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._names = OutputNames(self.dest)
        self._transfers = Offload(TRANSFER_THREADS)
        self._slots = asyncio.Semaphore(self.max_transfers)

    async def store(self, row: Row, finished: Finished) -> Stored:
        """The video stored and verified under a name no other work has; an expired URL is asked for again first."""
        name = await self.patient(self._names.choose, row)
        if finished.submission.reattached:
            # An earlier run may have stored it and died before recording it.
            try:
                earlier = await self.patient(inspect_stored, self.dest, name)
            except InvalidVideo:
                earlier = None
            if earlier is not None:
                log.info("row %s: its video was stored by an earlier run; kept", row.index)
                return earlier
        url = finished.video_url
        for attempt in range(URL_REFRESHES + 1):

            def store(url: str = url) -> Awaitable[Stored]:
                return store_video(self.downloads, url, self.dest, name=name, offload=self._transfers, rules=self.rules)

            try:
                async with self._slots:
                    stored, _ = await call_with_retries(
                        store, retry_if=is_transient, backoff=self.backoff, sleep=self.sleep
                    )
                return stored
            except DownloadError as exc:
                if exc.status not in _EXPIRED or attempt == URL_REFRESHES:
                    raise
                fresh = await jobs.fresh_video_url(self.api, finished.submission)
                if fresh is None:
                    await self.resume.forget(
                        row, f"its video URL answered {exc.status} and the provider no longer has it"
                    )
                    raise
                log.info("row %s: video URL answered %s; the generation gave a new one", row.index, exc.status)
                url = fresh
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the transfer threads (the run is over here)."""
        self._transfers.close()


def completed(row: Row, finished: Finished, stored: Stored, origin: Origin) -> RowOutcome:
    """A row whose video is stored and verified."""
    submission = finished.submission
    return RowOutcome(
        **outcomes.base(row, origin),
        status="completed",
        generation_id=submission.generation_id,
        submit_attempts=submission.attempts,
        polls=finished.polls,
        submitted_at=submission.submitted_at,
        completed_at=finished.completed_at,
        generation_seconds=round(finished.completed_at - submission.submitted_at, 3),
        **stored.outcome_fields(),
        mismatch=describe(
            row.params, duration_s=stored.info.duration_s, width=stored.info.width, height=stored.info.height
        ),
        credits_used=finished.credits_used,
        usd_spent=finished.usd_spent,
        client_request_id=submission.client_request_id,
    )
