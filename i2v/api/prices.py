"""What a video is expected to cost, in AI/ML API credits: for ``i2v estimate`` and ``--max-credits``.

The API reports what each job actually cost (``credits_used``); before a job runs only an
estimate exists. It comes from the live catalogue (``GET /v1/models?include=pricing``, see
:func:`live_rates`) when the API is reachable, else from the dated table shipped in
``catalogue/prices.json`` (per model, per resolution class, per second of video). **Edit
that file** when your account's prices differ. The vendor's documentation snapshot
publishes no per-model video prices, so the table holds the list prices below; models it
does not list are shown as unpriced until the live catalogue prices them.

Where the figures come from (taken 2026-11-25):

* Alibaba Model Studio's list prices per second of video, as republished at
  https://docs.crazyrouter.com/en/video/wan: ``wan2.5-i2v-preview`` ¥0.30 / ¥0.60 / ¥1.00
  (480p / 720p / 1080p); ``wan2.2-i2v-plus`` ¥0.14 / ¥0.70 (480P / 1080P). No list price
  was found for ``wan2.6-i2v``; it is priced like 2.5 here.
* Converted at ¥7.1 per US dollar, and to credits at AI/ML API's published rate of
  2,000,000 credits per US dollar (https://docs.aimlapi.com/faq/how-can-i-track-my-funds).

AI/ML API resells these models at its own prices (https://aimlapi.com/ai-ml-api-pricing),
which may differ from the list prices above; the figures reported by the API after each
job always win over this table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

_TABLE: Mapping[str, Any] = json.loads(
    resources.files("i2v.api.catalogue").joinpath("prices.json").read_text(encoding="utf-8")
)
CREDITS_PER_USD = 2_000_000
CNY_PER_USD: float = _TABLE["cny_per_usd"]
PRICES_TAKEN: str = _TABLE["taken"]
#: Where the figures come from, in one line (the module's docstring has the links).
PRICES_SOURCE: str = _TABLE["source"]
PRICES_FILE = "i2v/api/catalogue/prices.json"

#: Yuan per second of video, by model API id and resolution class.
_CNY_PER_SECOND: Mapping[str, Mapping[str, float]] = _TABLE["models"]


def listed(model: str) -> Mapping[str, float]:
    """The table's yuan per second for ``model`` by resolution class (empty when unlisted)."""
    return _CNY_PER_SECOND.get(model, {})


@dataclass(frozen=True)
class Estimate:
    """The expected cost of one job."""

    credits: float
    usd: float
    #: Whether the table had the model and resolution (else the model's dearest rate).
    listed: bool
    #: Seconds of video priced: the request's duration, or the model's fixed length.
    seconds: int = 5


def estimate(model: str, params: Mapping[str, Any], *, default_seconds: int = 5) -> Estimate:
    """Expected cost of a job for ``model`` with request ``params`` (resolution, duration)."""
    rates = _CNY_PER_SECOND.get(model, {})
    resolution = str(params.get("resolution") or "").lower()
    seconds = int(params.get("duration") or default_seconds)
    listed = resolution in rates
    cny = rates.get(resolution) if listed else max(rates.values(), default=1.0)
    usd = (cny or 0.0) * seconds / CNY_PER_USD
    return Estimate(credits=round(usd * CREDITS_PER_USD, 0), usd=round(usd, 4), listed=listed, seconds=seconds)


def credits(amount: float) -> str:
    """Credits for people: thousands separated, no needless decimals."""
    return f"{amount:,.2f}".rstrip("0").rstrip(".")
