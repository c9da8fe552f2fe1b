"""What a video is expected to cost, in AI/ML API credits: for ``i2v estimate`` and ``--max-credits``.

The API reports what each job actually cost (``credits_used``); before a job runs only an
estimate exists. It comes from the live catalogue (``GET /v1/models?include=pricing``, see
:func:`live_rates`) when the API is reachable, else from the dated table shipped in
``catalogue/prices.json`` (per model, per resolution class, per second of video). **Edit
that file** when your account's prices differ. The vendor's documentation snapshot
publishes no per-model video prices, so the table holds the list prices below; a model
neither the live catalogue nor the table prices is shown as "price unknown", never given
an invented rate.

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
from typing import Any, Literal

import httpx

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


#: Where a rate came from: the live catalogue, the shipped table, or nowhere (price unknown).
PriceSource = Literal["live", "table", "unknown"]
CATALOGUE_PATH = "/v1/models"
#: The live catalogue is a convenience: a slow or absent answer falls back to the table.
LIVE_TIMEOUT_S = 5.0


def listed(model: str) -> Mapping[str, float]:
    """The table's yuan per second for ``model`` by resolution class (empty when unlisted)."""
    return _CNY_PER_SECOND.get(model, {})


@dataclass(frozen=True)
class Estimate:
    """The expected cost of one job."""

    credits: float
    usd: float
    #: Whether the rates had the asked resolution (else the model's dearest rate is used).
    listed: bool
    #: Seconds of video priced: the request's duration, or the model's fixed length.
    seconds: int = 5
    #: ``live`` (``GET /v1/models?include=pricing``), ``table`` (the shipped, dated table) or
    #: ``unknown``: no price anywhere, so ``credits`` and ``usd`` are 0 and mean nothing.
    source: PriceSource = "table"

    @property
    def known(self) -> bool:
        return self.source != "unknown"


#: US dollars per second of video by lower-case resolution class ("" when one rate fits all).
Rates = Mapping[str, float]


def table_rates(model: str) -> Rates:
    """The shipped table's rates for ``model``, in dollars (empty when it does not list it)."""
    return {key.lower(): cny / CNY_PER_USD for key, cny in listed(model).items()}


def estimate(
    model: str,
    params: Mapping[str, Any],
    *,
    default_seconds: int = 5,
    live: Mapping[str, Rates] | None = None,
) -> Estimate:
    """Expected cost of a job for ``model`` with request ``params`` (resolution, duration).

    ``live`` holds the rates the live catalogue quotes (see :func:`parse_live`); a model it
    quotes is priced from it, any other from the shipped table, and one neither prices is
    ``unknown`` rather than given an invented rate.
    """
    seconds = int(params.get("duration") or default_seconds)
    source: PriceSource = "live"
    rates = (live or {}).get(model)
    if not rates:
        rates, source = table_rates(model), "table"
    if not rates:
        return Estimate(credits=0.0, usd=0.0, listed=False, seconds=seconds, source="unknown")
    resolution = str(params.get("resolution") or "").lower()
    rate = rates.get(resolution, rates.get(""))
    listed_rate = rate is not None
    usd = (rate if rate is not None else max(rates.values())) * seconds
    return Estimate(
        credits=round(usd * CREDITS_PER_USD, 0), usd=round(usd, 4), listed=listed_rate, seconds=seconds, source=source
    )


def parse_live(data: Any) -> dict[str, Rates]:
    """Per-second dollar rates by model id and alias, from ``GET /v1/models?include=pricing``.

    The vendor's ``pricing.kind`` decides the shape: ``fixed`` quotes one rate per unit,
    ``variants`` one per parameter combination (``when``), ``variable`` none. Only rates per
    second of video that depend on nothing but the resolution are taken; a rate is
    ``price / per`` (``per`` is not always 1).
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
        raise ValueError("GET /v1/models: the answer has no list of models")
    found: dict[str, Rates] = {}
    for model in data["data"]:
        if not isinstance(model, Mapping) or not isinstance(model.get("id"), str):
            continue
        rates = _rates(model.get("pricing"))
        if rates:
            aliases = [a for a in model.get("aliases") or () if isinstance(a, str)]
            for name in (model["id"], *aliases):
                found[name] = rates
    return found


def _rates(pricing: Any) -> dict[str, float]:
    if not isinstance(pricing, Mapping) or pricing.get("currency", "USD") != "USD":
        return {}
    rates: dict[str, float] = {}
    if pricing.get("kind") == "fixed":
        for unit in pricing.get("units") or ():
            rate = _per_second(unit, unit.get("name") if isinstance(unit, Mapping) else None)
            if rate is not None:
                rates[""] = rate
    elif pricing.get("kind") == "variants" and set(pricing.get("dimensions") or ()) <= {"resolution"}:
        for variant in pricing.get("variants") or ():
            when = variant.get("when") if isinstance(variant, Mapping) else None
            rate = _per_second(variant, variant.get("unit") if isinstance(variant, Mapping) else None)
            if isinstance(when, Mapping) and rate is not None:
                rates[str(when.get("resolution", "")).lower()] = rate
    return rates


def _per_second(quote: Any, unit: Any) -> float | None:
    if not isinstance(quote, Mapping) or unit != "second":
        return None
    price, per = quote.get("price"), quote.get("per", 1)
    if not isinstance(price, int | float) or not isinstance(per, int | float) or isinstance(price, bool):
        return None
    return float(price) / float(per) if per > 0 and price >= 0 else None


def fetch_live(base_url: str, *, timeout_s: float = LIVE_TIMEOUT_S) -> dict[str, Rates]:
    """The live catalogue's rates (no key needed).

    Raises ``ValueError`` or ``httpx.HTTPError`` when they cannot be had.
    """
    url = base_url.rstrip("/") + CATALOGUE_PATH
    answer = httpx.get(url, params={"include": "pricing"}, timeout=timeout_s, follow_redirects=False)
    answer.raise_for_status()
    return parse_live(answer.json())


def credits(amount: float) -> str:
    """Credits for people: thousands separated, no needless decimals."""
    return f"{amount:,.2f}".rstrip("0").rstrip(".")
