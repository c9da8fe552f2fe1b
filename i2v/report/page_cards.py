"""The report page's cards: what the page keeps of each manifest row, as plain JSON values.

Each row becomes one array of the values of :data:`COLUMNS` (the page's JSON block holds
the rows that way, and its script renders a page of cards at a time from them): the
links to the row's video, thumbnail and input image (or None, when there is none the page
may use), its mismatch flag, its costs as the API reported them and as the price table
expected them. Missing columns, None, NaN, pandas' NA and NaT read as null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from i2v.report.links import Href, safe_link
from i2v.report.summary import row_estimate, row_usd

#: What the page keeps of each row, in the order of the JSON block's arrays.
COLUMNS = (
    "row_index",
    "id",
    "prompt",
    "status",
    "error_kind",
    "error_message",
    "retryable",
    "video",
    "thumb",
    "duration_s",
    "width",
    "height",
    "credits_used",
    "generation_seconds",
    "model",
    "params",
    "mismatch",
    "run",
    "image",
    "usd",
    "estimate",
)


def card_values(row: Mapping[str, Any], href: Href) -> list[Any]:
    """One manifest row as the page keeps it: the values of :data:`COLUMNS`, plain JSON."""
    values = {name: _plain(row.get(name)) for name in COLUMNS}
    values["video"] = safe_link(href(_text(row.get("video_uri"))))
    values["thumb"] = safe_link(href(_text(row.get("thumbnail_uri"))))
    values["image"] = _image(row.get("image_url"), href)
    values["mismatch"] = _flag(row.get("mismatch"))
    values["status"] = str(values["status"] or "unknown")
    for name in ("id", "prompt", "error_kind", "error_message", "model", "params", "run"):
        if values[name] is not None and not isinstance(values[name], str):
            values[name] = str(values[name])
    # Costs where something was paid: what the API reported, and what the price table expected.
    paid = values["status"] == "completed" or values["credits_used"] is not None
    values["usd"] = _rounded(row_usd(row)) if paid else None
    values["estimate"] = row_estimate(row) if paid else None
    return [values[name] for name in COLUMNS]


def _rounded(usd: float | None) -> float | None:
    return None if usd is None else round(usd, 6)


def _image(value: Any, href: Href) -> str | None:
    """The link to a row's input image: a URL, or its copy under ``inputs/`` in the destination.

    A data URI (the manifest keeps only its type and size) or a path relative to the
    user's CSV (an invalid row's cell) names nothing the page can show.
    """
    ref = _text(value)
    if ref is None:
        return None
    try:
        scheme = urlsplit(ref).scheme.lower()
    except ValueError:
        return None
    if scheme == "data" or (not scheme and not ref.startswith(("/", "inputs/"))):
        return None
    return safe_link(href(ref))


def _plain(value: Any) -> Any:
    """A cell as a JSON value: None, NaN, pandas' NA and NaT become null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item())
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def _text(value: Any) -> str | None:
    plain = _plain(value)
    return str(plain) if plain not in (None, "") else None


def _flag(value: Any) -> str | None:
    """The mismatch column as text, or None when it is empty."""
    plain = _plain(value)
    if plain is None or plain is False or plain == "":
        return None
    if plain is True:
        return "mismatch"
    return str(plain).strip() or None
