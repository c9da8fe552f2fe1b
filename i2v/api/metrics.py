"""The provider's model metrics (``GET /models/metrics``): how long each model's requests take now.

No key is needed. The vendor's ``model-metrics`` OpenAPI file and "Model Performance
Metrics" page are the contract: ``aliases`` repeated once per model (at most 100), matched
exactly against a model's id and aliases; per model, ``duration_ms`` as p50/p75/p90/p99
over a sliding window. A model with no successful request inside the window is absent:
no data, not zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from i2v.errors import BadResponse

METRICS_PATH = "/models/metrics"
#: Models one request may name.
MAX_ALIASES = 100


@dataclass(frozen=True)
class Durations:
    """A model's request durations in seconds, at the percentiles the provider reports."""

    p50: float
    p75: float
    p90: float
    p99: float

    def quantiles(self) -> dict[float, float]:
        """Seconds by quantile (0.5 → p50, ...)."""
        return {0.5: self.p50, 0.75: self.p75, 0.9: self.p90, 0.99: self.p99}


def query(models: Iterable[str]) -> list[tuple[str, str]]:
    """The query string naming ``models``: ``aliases`` once per model, never joined by commas."""
    names = list(dict.fromkeys(models))
    if len(names) > MAX_ALIASES:
        raise ValueError(f"at most {MAX_ALIASES} models per request, got {len(names)}")
    return [("aliases", name) for name in names]


def parse(data: Any) -> dict[str, Durations]:
    """Durations by model name, for every model the answer measured; raises :class:`BadResponse` if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise BadResponse("GET /models/metrics: the answer has no list of models")
    found: dict[str, Durations] = {}
    for entry in data["models"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("alias"), str):
            continue
        metrics = entry.get("metrics")
        durations = metrics.get("duration_ms") if isinstance(metrics, Mapping) else None
        seconds = _seconds(durations)
        if seconds is not None:
            found[entry["alias"]] = seconds
    return found


def _seconds(durations: Any) -> Durations | None:
    """A ``duration_ms`` object in seconds; None if any percentile is missing or not a positive number."""
    if not isinstance(durations, Mapping):
        return None
    values = []
    for name in ("p50", "p75", "p90", "p99"):
        value = durations.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            return None
        values.append(value / 1000)
    # Percentiles never fall as they rise; an answer where they do is read in order.
    values.sort()
    return Durations(*values)
