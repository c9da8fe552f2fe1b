"""Creates whose answer was lost, resolved through the vendor's request tracing and usage logs.

Every create carries ``X-Client-Request-Id`` (:func:`i2v.engine.journal.client_request_id`),
journaled before it leaves. When its answer never came (a reset, a timeout, a 5xx after
the job was made, a crash in flight), the provider's usage logs (``GET /v2/logs``) still
list the request, with that id and, for an asynchronous generation, the generation id as
``inference_id`` (the vendor's "Request tracing and cost headers" and "Usage logs"
pages). So a ``sending`` journal entry is settled without a human:

* **found, succeeded** — the create made a job: re-attach to ``inference_id`` and collect
  the video, paying nothing more;
* **found, failed** — a failed request is never billed and made no job: send it again;
* **not found** — the logs are filled by an analytics pipeline and may lag, so absence
  means something only after :data:`DEFAULT_GRACE_S` since the create: then the create
  never reached the provider, and is sent again. Before that the row waits, looking again
  every :data:`RECHECK_S`.

Where the key may not read the logs (401, 403, 404), that is said once and the row keeps
the old behaviour (``submit_unknown``; ``--resubmit-unknown`` sends it again without
looking). Log reads share one rate limiter, within the vendor's 200 requests per 60 s,
and one cache of the rows seen, so many unknowns cost a few pages, not a few pages each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiolimiter import AsyncLimiter

from i2v.api.models import get_model
from i2v.api.usage_logs import LogPage, LogRow
from i2v.engine.journal import Entry
from i2v.errors import AuthError, I2VError, OutOfCredits, RequestRejected

log = logging.getLogger(__name__)

#: After this long since a create, its absence from the logs means it never reached the provider.
DEFAULT_GRACE_S = 15 * 60.0
#: Seconds between two looks for a create not yet in the logs.
RECHECK_S = 30.0
#: The logs' own limit: 200 requests per 60 seconds (a few are left for other readers).
LOG_REQUESTS_PER_MINUTE = 180
#: Rows per page (the vendor's largest).
PAGE_ROWS = 100
#: A window starts this long before the create (clocks differ) and ends this long after it.
WINDOW_BEFORE_S = 300.0
WINDOW_AFTER_S = 3600.0
#: A torn journal entry does not say when its create left: look this far back.
UNKNOWN_AGE_WINDOW_S = 2 * 86_400.0

Sleep = Callable[[float], Awaitable[None]]


class UsageLogs(Protocol):
    """What reads the provider's usage logs (the API client does)."""

    async def logs(self, *, start: float, end: float, model: str | None, offset: int, limit: int) -> LogPage: ...


@dataclass(frozen=True)
class Found:
    """The lost create made this generation."""

    generation_id: str
    row: LogRow


@dataclass(frozen=True)
class NoJob:
    """The lost create made no job; why we know."""

    reason: str


@dataclass(frozen=True)
class Unresolvable:
    """The logs cannot say (the key may not read them); why."""

    reason: str


Resolution = Found | NoJob | Unresolvable


class UnknownCreates:
    """Settles ``sending`` journal entries from the provider's logs; one per run and process."""

    def __init__(
        self,
        logs: UsageLogs,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        self._logs = logs
        self.grace_s = grace_s
        #: A short grace (tests, dry runs on the emulator) looks again sooner.
        self.recheck_s = min(RECHECK_S, max(0.5, grace_s / 10))
        self._sleep = sleep
        self._clock = clock
        self._limiter = limiter or AsyncLimiter(LOG_REQUESTS_PER_MINUTE, 60)
        self._seen: dict[str, LogRow] = {}
        self._read_up_to: dict[str | None, float] = {}
        self._lock = asyncio.Lock()
        self._unavailable: str | None = None

    async def resolve(self, entry: Entry) -> Resolution:
        """What became of ``entry``'s create; waits (up to the grace period) while the logs may still lag."""
        while True:
            if self._unavailable is not None:
                return Unresolvable(self._unavailable)
            row = await self._look(entry)
            if row is not None:
                if row.status == "succeeded" and row.inference_id:
                    return Found(row.inference_id, row)
                return NoJob(f"the provider's logs list its create as {row.status}, at no cost")
            if self._unavailable is not None:  # set while this look read the logs
                return Unresolvable(self._unavailable)  # type: ignore[unreachable]
            age = self._clock() - entry.at if entry.at else self.grace_s
            if age >= self.grace_s:
                return NoJob(f"its create is not in the provider's logs {age / 60:.0f} min after it was sent")
            await self._sleep(min(self.recheck_s, self.grace_s - age))

    async def _look(self, entry: Entry) -> LogRow | None:
        """The log row of the entry's create, reading new log pages if need be."""
        match = self._match(entry)
        if match is not None:
            return match
        async with self._lock:
            match = self._match(entry)
            if match is not None:
                return match
            now = self._clock()
            start = now - UNKNOWN_AGE_WINDOW_S if entry.torn or not entry.at else entry.at - WINDOW_BEFORE_S
            end = min(now, (entry.at or now) + WINDOW_AFTER_S)
            model = _api_model(entry.model)
            # Rows older than an earlier read's end are in hand, but for those the analytics
            # pipeline had not delivered yet: read again from a grace period before it.
            start = max(start, self._read_up_to.get(model, start) - self.grace_s)
            try:
                await self._read(start, end, model)
            except (AuthError, OutOfCredits, RequestRejected) as exc:
                status = getattr(exc, "status", None)
                if status in (401, 403, 404) or isinstance(exc, (AuthError, OutOfCredits)):
                    self._unavailable = f"the API key may not read the usage logs ({exc})"
                    log.warning("%s: creates whose answer was lost stay unknown", self._unavailable)
                    return None
                raise
            except I2VError as exc:
                log.warning("usage logs not read (%s); looking again later", exc)
                return None
            self._read_up_to[model] = max(self._read_up_to.get(model, 0.0), end)
        return self._match(entry)

    def _match(self, entry: Entry) -> LogRow | None:
        if entry.client_request_id:
            return self._seen.get(entry.client_request_id)
        # A torn entry: the latest create of this row key that the logs show.
        prefix = f"i2v-{entry.row_key}-"
        mine = [row for cid, row in self._seen.items() if cid.startswith(prefix)]
        return max(mine, key=lambda row: row.created) if mine else None

    async def _read(self, start: float, end: float, model: str | None) -> None:
        offset = 0
        while True:
            async with self._limiter:
                page = await self._logs.logs(start=start, end=end, model=model, offset=offset, limit=PAGE_ROWS)
            for row in page.rows:
                if row.client_request_id:
                    self._seen.setdefault(row.client_request_id, row)
            if not page.has_more or not page.rows:
                return
            offset += len(page.rows)


def _api_model(name: str) -> str | None:
    """The model as the provider's logs name it; None (every model) if the registry does not know it."""
    try:
        return get_model(name).api_id if name else None
    except KeyError:
        return None
