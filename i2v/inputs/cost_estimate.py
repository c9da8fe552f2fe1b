"""What ``i2v estimate`` expects a run of an input to cost, before it is paid for.

:func:`estimate` prices the jobs a run would start, each piece of work counted once, by
model, resolution and duration, from the table in :mod:`i2v.api.prices` or, when asked,
the API's live catalogue (:func:`live_prices`). Invalid rows are not sent, so they are
listed apart (:mod:`i2v.inputs.input_problems`). :func:`estimate_text` is the table a
person reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from i2v.api import prices
from i2v.api.prices import credits
from i2v.inputs import comparison
from i2v.inputs.input_problems import Problem, invalid_rows, problem_table
from i2v.inputs.text_table import text_table
from i2v.inputs.validation import RowSet

#: Where the figures :func:`estimate` uses are kept, for people to read and edit.
PRICE_TABLE = prices.PRICES_FILE


@dataclass(frozen=True)
class CostLine:
    """The jobs of one model, resolution and duration, and what they are expected to cost."""

    model: str
    resolution: str
    duration_s: int
    jobs: int
    credits: float
    usd: float
    #: False when the rates lack this resolution (the model's dearest rate is used).
    listed: bool
    #: ``live`` (the API's catalogue), ``table`` (the shipped table) or ``unknown``: no
    #: price anywhere, so ``credits`` and ``usd`` are 0 and left out of the totals.
    source: str = "table"


@dataclass
class CostEstimate:
    """What :func:`estimate` expects a run of one input to cost."""

    input: str
    rows: int
    lines: list[CostLine] = field(default_factory=list)
    #: Valid rows that repeat an earlier row's work: generated (and paid) once.
    duplicates: int = 0
    #: Invalid rows: not sent, so not counted.
    invalid: list[Problem] = field(default_factory=list)
    #: Where the live catalogue was asked (None: it was not), and why it gave nothing.
    live_url: str | None = None
    live_error: str | None = None
    #: Rows of the input (``rows`` counts (row, model) pairs in a comparison); None: as many as ``rows``.
    input_rows: int | None = None
    #: The models a comparison runs rows on.
    models: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(line.jobs for line in self.lines)

    @property
    def unpriced_jobs(self) -> int:
        """Jobs of models with no known price: counted apart, never in the cost totals."""
        return sum(line.jobs for line in self.lines if line.source == "unknown")

    @property
    def credits(self) -> float:
        return sum(line.credits for line in self.lines)

    @property
    def usd(self) -> float:
        return round(sum(line.usd for line in self.lines), 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "rows": self.rows,
            "input_rows": self.rows if self.input_rows is None else self.input_rows,
            "models": self.models,
            "jobs": self.jobs,
            "duplicates": self.duplicates,
            "credits": self.credits,
            "usd": self.usd,
            "lines": [asdict(line) for line in self.lines],
            "not_counted": [asdict(problem) for problem in self.invalid],
            "prices": {"file": PRICE_TABLE, "taken": prices.PRICES_TAKEN, "source": prices.PRICES_SOURCE},
            "unpriced_jobs": self.unpriced_jobs,
            "live_prices": {
                "url": self.live_url,
                "used": any(line.source == "live" for line in self.lines),
                "error": self.live_error,
            },
        }


def live_prices(base_url: str) -> tuple[dict[str, prices.Rates], str, str | None]:
    """The live catalogue's rates, the URL asked and, when it could not be had, why (rates then empty)."""
    url = base_url.rstrip("/") + prices.CATALOGUE_PATH + "?include=pricing"
    try:
        return prices.fetch_live(base_url), url, None
    except (httpx.HTTPError, ValueError) as exc:
        return {}, url, f"{type(exc).__name__}: {exc}"


def estimate(
    path: str | Path,
    rows: RowSet,
    *,
    live: Mapping[str, prices.Rates] | None = None,
    live_url: str | None = None,
    live_error: str | None = None,
) -> CostEstimate:
    """Jobs and expected cost by model, resolution and duration; each piece of work counted once.

    ``live``: rates from the API's catalogue (see :func:`live_prices`), which win over the table.
    """
    groups: dict[tuple[str, str, int], list[prices.Estimate]] = {}
    seen: set[str] = set()
    duplicates = 0
    for row in rows.rows:
        if row.key in seen:
            duplicates += 1
            continue
        seen.add(row.key)
        price = prices.estimate(row.model, row.params, live=live)
        resolution = str(row.params.get("resolution") or "-")
        groups.setdefault((row.model, resolution, price.seconds), []).append(price)
    lines = [
        CostLine(
            model=model,
            resolution=resolution,
            duration_s=seconds,
            jobs=len(each),
            credits=sum(price.credits for price in each),
            usd=round(sum(price.usd for price in each), 4),
            listed=all(price.listed for price in each),
            source=each[0].source,
        )
        for (model, resolution, seconds), each in sorted(groups.items(), key=_by_model_resolution_duration)
    ]
    return CostEstimate(
        str(path),
        rows.total,
        lines,
        duplicates,
        invalid_rows(rows),
        live_url,
        live_error,
        input_rows=rows.input_rows,
        models=rows.compared,
    )


def estimate_text(result: CostEstimate) -> str:
    """The estimate as a table a person reads: jobs and cost per model, resolution and duration."""
    rows: list[tuple[object, ...]] = [
        (line.model, line.resolution, f"{line.duration_s} s", line.jobs, *_cost(line)) for line in result.lines
    ]
    unpriced = result.unpriced_jobs
    priced = result.jobs - unpriced
    rows.append(("total", "", "", priced, credits(result.credits), f"{result.usd:,.2f}"))
    if unpriced:
        rows.append(("price unknown", "", "", unpriced, "-", "-"))
    lines = text_table(("model", "resolution", "duration", "jobs", "credits", "USD"), rows, right=(2, 3, 4, 5))
    input_rows = result.rows if result.input_rows is None else result.input_rows
    counted = f"{result.input}: {comparison.counted(input_rows, result.rows, len(result.models))}, {result.jobs} jobs"
    if result.duplicates:
        counted += f" ({result.duplicates} duplicate rows counted once)"
    lines += ["", counted]
    if any(not line.listed and line.source != "unknown" for line in result.lines):
        lines.append("* no price for this resolution: the model's dearest rate is used")
    if unpriced:
        lines.append(f"price unknown: {unpriced} jobs of models no price list has, not in the totals")
    sources = {line.source for line in result.lines}
    if "live" in sources:
        rest = " (the rest from the table)" if "table" in sources else ""
        lines.append(f"prices: live, from {result.live_url}{rest}")
    elif result.live_url is not None:
        lines.append(f"live prices: not used ({result.live_error or 'the catalogue quotes none of these models'})")
    lines += [
        f"prices: {PRICE_TABLE}, taken {prices.PRICES_TAKEN} ({prices.PRICES_SOURCE})",
        "an estimate: edit that table if your prices differ; the API reports what each job actually cost",
    ]
    if result.invalid:
        lines += ["", f"not counted: {len(result.invalid)} invalid rows"]
        lines += problem_table(result.invalid)
    return "\n".join(lines)


def _cost(line: CostLine) -> tuple[str, str]:
    """The credits and USD cells of a line; a model no price list has says so."""
    if line.source == "unknown":
        return "price unknown", "-"
    return credits(line.credits), f"{line.usd:,.2f}" + ("" if line.listed else "*")


def _by_model_resolution_duration(item: tuple[tuple[str, str, int], Any]) -> tuple[str, int, int]:
    model, resolution, seconds = item[0]
    digits = "".join(ch for ch in resolution if ch.isdigit())
    return model, int(digits or 0), seconds
