"""The provider's usage logs (``GET /v2/logs``): one row per request, with the ids that trace it.

Read by :mod:`i2v.engine.unknown_creates` to learn what became of a create whose answer
was lost: the row with the create's ``X-Client-Request-Id`` names the generation it made
(``inference_id``), or shows it failed (at no cost). The vendor's ``logs-v2`` OpenAPI
file and "Usage logs" page are the contract: a window by ``start`` and ``end`` (ISO-8601,
92 days at most), ``model`` repeatable and matched exactly, pages of at most 100 rows,
newest first, 200 requests per 60 s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from i2v.errors import BadResponse

LOGS_PATH = "/v2/logs"
#: Rows per page, the vendor's largest.
MAX_PAGE = 100


@dataclass(frozen=True)
class LogRow:
    """One request in the provider's usage logs."""

    client_request_id: str | None
    inference_id: str
    status: str
    model: str
    created: float
    credits: float = 0.0
    usd: float = 0.0


@dataclass(frozen=True)
class LogPage:
    """One page of the usage logs."""

    rows: list[LogRow]
    has_more: bool


def query(*, start: float, end: float, model: str | None, offset: int, limit: int) -> dict[str, Any]:
    """The query string of one page: a window between two unix times, one model or all."""
    params: dict[str, Any] = {
        "start": _iso(start),
        "end": _iso(max(start, end)),
        "offset": max(0, offset),
        "limit": min(MAX_PAGE, max(1, limit)),
    }
    if model:
        params["model"] = model
    return params


def parse_page(data: Any) -> LogPage:
    """A page of rows from the answer's JSON; raises :class:`BadResponse` if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise BadResponse("usage logs: answer lacks 'data'")
    rows = []
    for item in data["data"]:
        if not isinstance(item, dict):
            continue
        cost: dict[str, Any] = item["cost"] if isinstance(item.get("cost"), dict) else {}
        rows.append(
            LogRow(
                client_request_id=_text(item.get("client_request_id")),
                inference_id=_text(item.get("inference_id")) or "",
                status=str(item.get("status", "")),
                model=str(item.get("model", "")),
                created=_when(item.get("created")),
                credits=float(cost.get("credits") or 0),
                usd=float(cost.get("usd") or 0),
            )
        )
    pagination: dict[str, Any] = data["pagination"] if isinstance(data.get("pagination"), dict) else {}
    return LogPage(rows, bool(pagination.get("has_more")))


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _when(value: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
