"""``GET /models/metrics``: how long each model's requests take, as the vendor reports it.

The vendor's ``model-metrics`` OpenAPI file and "Model Performance Metrics" page are the
contract. No key is needed. The only query parameter is ``aliases``, repeated once per
model (at most 100 values), each matched exactly against a model's id and aliases, so a
comma-separated list is one long name that matches nothing; any other parameter is
refused with 400. The answer holds ``window_seconds``, ``generated_at`` and one entry per
model with successful requests inside the window; a model without any is absent, never
reported as zero. A video model's ``metrics`` has ``duration_ms`` alone (``ttft_ms`` and
``tps`` apply to text models), as p50/p75/p90/p99.

The emulator stands for a service many users share, so its window always holds jobs of
every model it serves: the percentiles are those of the generation times it gives its own
jobs (``generation_seconds``, varied evenly by ``generation_jitter`` either way). Only a
configuration under which no job can succeed leaves the list empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

METRICS_PATH = "/models/metrics"
#: The sliding window the vendor's example reports.
WINDOW_SECONDS = 300
#: Values of ``aliases`` one request may carry.
MAX_ALIASES = 100
PERCENTILES = (50, 75, 90, 99)


class MetricsQueryProblem(ValueError):
    """A query the endpoint refuses with 400; the message says why."""


@dataclass(frozen=True)
class ServedModel:
    """A model the emulator serves: its id, every other name it answers to, and its endpoint."""

    id: str
    aliases: tuple[str, ...]
    endpoint: str
    #: Seconds a job takes before jitter, and the jitter (a fraction either way).
    generation_seconds: float
    generation_jitter: float

    @property
    def names(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))


def parse_aliases(params: Iterable[tuple[str, str]]) -> frozenset[str] | None:
    """The models asked for (None: every one), from every query name and value in order."""
    wanted: list[str] = []
    given = False
    for name, value in params:
        if name != "aliases":
            raise MetricsQueryProblem(f"property {name} should not exist")
        given = True
        wanted.append(value)
    if len(wanted) > MAX_ALIASES:
        raise MetricsQueryProblem(f"aliases must contain no more than {MAX_ALIASES} elements")
    return frozenset(wanted) if given else None


def duration_percentiles(generation_seconds: float, jitter: float) -> dict[str, float]:
    """p50/p75/p90/p99 in milliseconds of ``generation_seconds`` varied evenly by ``jitter`` either way."""
    return {f"p{p}": round(generation_seconds * (1 + jitter * (2 * p / 100 - 1)) * 1000, 1) for p in PERCENTILES}


def answer(
    models: Iterable[ServedModel], wanted: frozenset[str] | None, *, succeeds: bool, now: datetime | None = None
) -> dict[str, Any]:
    """The endpoint's JSON: ``models`` filtered by ``wanted``; empty when no job can succeed."""
    entries: list[Mapping[str, Any]] = []
    if succeeds:
        for model in models:
            if wanted is not None and wanted.isdisjoint(model.names):
                continue
            entries.append(
                {
                    "alias": model.id,
                    "endpoint": model.endpoint,
                    "metrics": {"duration_ms": duration_percentiles(model.generation_seconds, model.generation_jitter)},
                }
            )
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "window_seconds": WINDOW_SECONDS,
        "generated_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "models": entries,
    }
