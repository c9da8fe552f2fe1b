"""``GET /v2/logs``: one row per inference request, and the rules of its query.

The vendor's contract (``usage-logs.md``, ``logs-v2.json``, and the window rules it
shares with ``api-key-usage.md``):

* The window is ``period`` (``<n>h`` or ``<n>d``, ``n`` a positive integer) or both
  ``start`` and ``end`` (ISO-8601; a time without an offset is UTC); never both, never
  neither. ``end`` must not be earlier than ``start``; the window is at most 92 days.
* ``model`` and ``status`` may be repeated; neither splits on commas. A model matches
  ``source/alias`` or the bare alias exactly, so ``a,b`` is one name that matches
  nothing. ``status`` is ``succeeded`` or ``failed``; anything else is a 400.
* ``limit`` is 1-100 (default 50), ``offset`` at least 0.
* Rows come newest first, failed requests included at zero cost. They come from an
  analytics pipeline, so a row shows up only some time after its request (the
  emulator's ``logs_delay_seconds``).

A create's row carries its job's cost once the job is ``completed`` (video is charged
then, not before) and nothing before or if it fails; a fetch's row costs nothing (the
charge is the job's, recorded once, under its create). Every failure of a query is a
:class:`QueryProblem`; the app turns it into the vendor's error answer.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from i2v.emulator.jobs import Job
from i2v.emulator.tracing import usd

LogStatus = Literal["succeeded", "failed"]
LOG_STATUSES: tuple[LogStatus, ...] = ("succeeded", "failed")
MAX_WINDOW = timedelta(days=92)
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
#: How many ``model`` values one query may carry.
MAX_MODELS = 50
#: Parameters that take a single value.
_SINGLE = ("period", "start", "end", "key_prefix", "limit", "offset")
_PERIOD = re.compile(r"([0-9]+)([hd])")
_WHOLE = re.compile(r"[0-9]+")


class QueryProblem(ValueError):
    """A query the endpoint refuses with a 400; the message says why."""


@dataclass(frozen=True)
class LogQuery:
    """A parsed ``GET /v2/logs`` query."""

    start: datetime
    end: datetime
    key_prefix: str | None = None
    #: ``None``: every model.
    models: frozenset[str] | None = None
    #: ``None``: both outcomes.
    statuses: frozenset[str] | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_query(params: Iterable[tuple[str, str]], now: datetime) -> LogQuery:
    """The query in ``params`` (every name and value, in order), its relative window ending ``now``.

    Parameters the endpoint does not know are ignored.
    """
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)
    for name in _SINGLE:
        if len(values.get(name, ())) > 1:
            raise QueryProblem(f"{name} must be given at most once")
    period = _one(values, "period")
    start_text, end_text = _one(values, "start"), _one(values, "end")
    if period is not None and (start_text is not None or end_text is not None):
        raise QueryProblem("Pass either period or both start and end, not both")
    if period is not None:
        start, end = now - _period(period), now
    elif start_text is not None and end_text is not None:
        start, end = _instant("start", start_text), _instant("end", end_text)
        if end < start:
            raise QueryProblem("end must not be earlier than start")
        if end - start > MAX_WINDOW:
            raise QueryProblem("The window must not exceed 92 days")
    elif start_text is None and end_text is None:
        raise QueryProblem("Pass either period or both start and end")
    else:
        raise QueryProblem("start and end must be given together")

    models = values.get("model")
    if models is not None and len(models) > MAX_MODELS:
        raise QueryProblem(f"model takes at most {MAX_MODELS} values")
    statuses = values.get("status")
    for status in statuses or ():
        if status not in LOG_STATUSES:
            raise QueryProblem(f"status must be one of 'succeeded' | 'failed', received '{status}'")
    return LogQuery(
        start=start,
        end=end,
        key_prefix=_one(values, "key_prefix"),
        models=None if models is None else frozenset(models),
        statuses=None if statuses is None else frozenset(statuses),
        limit=_whole(values, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_whole(values, "offset", 0, 0, None),
    )


def _one(values: dict[str, list[str]], name: str) -> str | None:
    given = values.get(name)
    return None if not given else given[0]


def _period(text: str) -> timedelta:
    match = _PERIOD.fullmatch(text)
    count = int(match.group(1)) if match else 0
    if match is None or count < 1:
        raise QueryProblem(f"period must be a positive integer followed by 'h' or 'd' (24h, 7d), received '{text}'")
    span = timedelta(hours=count) if match.group(2) == "h" else timedelta(days=count)
    if span > MAX_WINDOW:
        raise QueryProblem("The window must not exceed 92 days")
    return span


def _instant(name: str, text: str) -> datetime:
    """An ISO-8601 time; one without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryProblem(f"{name} must be an ISO-8601 date or time, received '{text}'") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _whole(values: dict[str, list[str]], name: str, default: int, low: int, high: int | None) -> int:
    text = _one(values, name)
    if text is None:
        return default
    number = int(text) if _WHOLE.fullmatch(text) else None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise QueryProblem(f"{name} must be an integer {bounds}, received '{text}'")
    return number


def owns_prefix(api_key: str, prefix: str) -> bool:
    """Whether ``prefix`` names ``api_key`` (the emulator's only key)."""
    return bool(prefix) and api_key.startswith(prefix)


@dataclass(eq=False, slots=True)
class LogRow:
    """One inference request, as ``/v2/logs`` lists it."""

    created: datetime
    #: Monotonic time from which the row is listed.
    visible_at: float
    status: LogStatus
    #: ``source/alias``; empty when the request named no model the service could read.
    model: str
    request_id: str
    inference_id: str
    client_request_id: str | None
    #: A create's job: the row costs what the job does once it is completed.
    charged_job: Job | None = None

    @property
    def credits(self) -> int:
        job = self.charged_job
        if self.status != "succeeded" or job is None or job.status != "completed":
            return 0
        return round(job.credits)

    def matches(self, query: LogQuery) -> bool:
        if not query.start <= self.created <= query.end:
            return False
        if query.statuses is not None and self.status not in query.statuses:
            return False
        if query.models is not None:
            source, slash, alias = self.model.partition("/")
            names = (self.model, alias) if source and slash and alias else (self.model,)
            if not self.model or query.models.isdisjoint(names):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        credits = self.credits
        return {
            "created": self.created.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "status": self.status,
            "origin": "api",
            "model": self.model,
            "cost": {"usd": usd(credits), "credits": credits},
            "tokens": {"input": 0, "output": 0, "total": 0},
            "request_id": self.request_id,
            "inference_id": self.inference_id,
            "client_request_id": self.client_request_id,
        }


class UsageLog:
    """Every inference request's row, oldest first, for the one key the emulator has."""

    def __init__(self) -> None:
        self._rows: list[LogRow] = []

    def add(self, row: LogRow) -> None:
        # Rows are added as their answers are decided, which is not always the order the
        # requests came in (an answer may be held): keep them in the order they came in.
        bisect.insort(self._rows, row, key=lambda each: each.created)

    def __len__(self) -> int:
        return len(self._rows)

    def page(self, query: LogQuery, now: float) -> dict[str, Any]:
        """The answer to ``query`` at monotonic time ``now``: rows listed by then, newest first."""
        found = [row for row in reversed(self._rows) if row.visible_at <= now and row.matches(query)]
        page = found[query.offset : query.offset + query.limit]
        return {
            "data": [row.to_json() for row in page],
            "pagination": {
                "limit": query.limit,
                "offset": query.offset,
                "total": len(found),
                "has_more": query.offset + len(page) < len(found),
            },
        }
