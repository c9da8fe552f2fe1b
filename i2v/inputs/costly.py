"""Rows that leave a costly choice to the model: its default resolution and duration, when those are dear.

A row with no ``resolution`` or ``duration`` (and a run without ``--resolution`` or
``--duration``) gets the model's defaults, and some models default to their priciest
combination (wan2.5: 1080p and 10 s). :func:`costly_defaults` finds the (row, model) pairs
that do, from the catalogue's fields and the price table, so that ``estimate`` and the
start of ``run`` can say so in one line, with what the cheapest choice would cost.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2v.api import prices
from i2v.api.models import ModelSpec, Param, Route, RouteName, get_model
from i2v.errors import InputError
from i2v.inputs import comparison
from i2v.inputs.csv_reader import Reading
from i2v.inputs.sources import Opener, input_format, open_local
from i2v.limits import Limits

#: The fields whose default sets the price of a video.
COSTED = ("resolution", "duration")
#: A default at least this many times the cheapest choice is worth a word even when it is not the priciest.
NOTABLY_PRICIER = 2.0
#: The options that choose the costed fields for every row.
_OPTIONS = {"resolution": "--resolution", "duration": "--duration"}


@dataclass(frozen=True)
class CostlyDefault:
    """Pairs of rows and a model that get the model's dear defaults for the fields they leave blank."""

    model: str
    rows: int
    #: The fields left blank, with the model's defaults for them.
    defaults: Mapping[str, Any]
    usd: float
    #: The cheapest values of those fields (the rest as the rows give them), and its price.
    cheapest: Mapping[str, Any]
    cheapest_usd: float
    #: Whether the defaults are the model's priciest choice for those fields.
    priciest: bool

    def message(self) -> str:
        """One line: how many rows, the defaults, their price a video, and how to choose cheaper."""
        fields = " and ".join(self.defaults)
        rows = "1 row leaves" if self.rows == 1 else f"{self.rows:,} rows leave"
        how = "its priciest choice" if self.priciest else f"{self.usd / self.cheapest_usd:.1f}× its cheapest"
        options = "/".join(_OPTIONS[name] for name in self.defaults)
        return (
            f"{rows} {fields} blank, so {self.model} uses its default{'s' if len(self.defaults) > 1 else ''}"
            f" {_shown(self.defaults)}:"
            f" about ${self.usd:.2f} a video, {how} ({_shown(self.cheapest)}: ${self.cheapest_usd:.2f});"
            f" give {options} (or the {fields} column{'s' if len(self.defaults) > 1 else ''}) to choose cheaper"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rows": self.rows,
            "defaults": dict(self.defaults),
            "usd": self.usd,
            "cheapest": dict(self.cheapest),
            "cheapest_usd": self.cheapest_usd,
            "priciest": self.priciest,
        }


def scan(
    path: str | Path,
    *,
    model: str,
    models: Sequence[str] = (),
    route: RouteName | None = None,
    defaults: Mapping[str, Any] | None = None,
    format: str | None = None,
    opener: Opener = open_local,
    columns: Mapping[str, str] | None = None,
) -> list[CostlyDefault]:
    """The costly defaults of an input's rows, from one pass over its cells (nothing is validated or opened).

    A row that is invalid for other reasons may be counted; the run fails it before anything is paid.
    """
    given = {name: value for name, value in (defaults or {}).items() if value is not None and value != ""}
    if all(name in given for name in COSTED):
        return []  # the run chooses both for every row: no row is left to the model's defaults
    source = str(path)
    reading = Reading(source, input_format(source, format), opener, Limits().max_row_bytes, dict(columns or {}))
    run_model = get_model(model)
    compared = comparison.compared_models(models)
    with reading.open(offset=None, line=1) as (_, records):
        cells = (record.cells for _, record in records if record.problem is None)
        return costly_defaults(_pairs(cells, run_model, compared, route, given))


_Pair = tuple[ModelSpec, Route, Mapping[str, Any], tuple[str, ...]]


def costly_defaults(pairs: Iterable[_Pair]) -> list[CostlyDefault]:
    """From (model, route, costed values, which of them are the model's defaults) per (row, model): the dear ones."""
    groups: Counter[tuple[str, RouteName, tuple[tuple[str, Any], ...], tuple[str, ...]]] = Counter()
    for spec, route, values, defaulted in pairs:
        if defaulted:
            groups[(spec.name, route.name, tuple(sorted(values.items())), defaulted)] += 1
    found: list[CostlyDefault] = []
    for (name, route_name, items, defaulted), count in groups.items():
        spec = get_model(name)
        route = spec.route(route_name)
        values = dict(items)
        if not _listed(spec, values):
            continue  # no price of its own in the table: nothing to compare the default's with
        usd = _usd(spec, values)
        choices = [_choices(route.params[field]) for field in defaulted]
        priced = []
        for combination in itertools.product(*choices):
            tried = {**values, **dict(zip(defaulted, combination, strict=True))}
            priced.append((_usd(spec, tried), {field: tried[field] for field in defaulted}))
        cheapest_usd, cheapest = min(priced, key=lambda item: item[0])
        priciest = usd >= max(price for price, _ in priced)
        if cheapest_usd <= 0 or usd <= cheapest_usd or not (priciest or usd >= NOTABLY_PRICIER * cheapest_usd):
            continue
        chosen = {field: values[field] for field in defaulted}
        found.append(CostlyDefault(name, count, chosen, round(usd, 2), cheapest, round(cheapest_usd, 2), priciest))
    return sorted(found, key=lambda item: (-item.rows, item.model))


def _pairs(
    records: Iterable[Mapping[str, str]],
    run_model: ModelSpec,
    compared: tuple[ModelSpec, ...],
    run_route: RouteName | None,
    given: Mapping[str, Any],
) -> Iterator[_Pair]:
    """Each (row, model) as validation would make it, with its costed values and which are defaults."""
    for raw in records:
        cells = {key.strip().lower(): value.strip() for key, value in raw.items() if isinstance(value, str)}
        try:
            specs = comparison.row_models(cells, compared)
            if specs is None:
                specs = (get_model(comparison.split_models(cells[comparison.MODELS_COLUMN])[0]),)
            elif not specs:
                specs = (get_model(cells["model"]) if cells.get("model") else run_model,)
        except (InputError, KeyError):
            continue  # the run fails the row, naming the model
        for spec in specs:
            try:
                route = spec.route(cells.get("api_path") or run_route)  # type: ignore[arg-type]
            except KeyError:
                continue
            values: dict[str, Any] = {}
            defaulted: list[str] = []
            for field in COSTED:
                param = route.params.get(field)
                if param is None or not param.offered:
                    continue
                value = cells.get(field) or given.get(field)
                if value is None or value == "":
                    if param.default is None:
                        continue
                    value = param.default
                    defaulted.append(field)
                values[field] = value
            yield spec, route, values, tuple(defaulted)


def _choices(param: Param) -> list[Any]:
    """What a field may be set to: its enum, the whole seconds of its range, or just its default."""
    if param.choices:
        return list(param.choices)
    if param.minimum is not None and param.maximum is not None and param.maximum - param.minimum <= 60:
        return list(range(int(param.minimum), int(param.maximum) + 1))
    return [param.default]


def _usd(spec: ModelSpec, values: Mapping[str, Any]) -> float:
    duration = values.get("duration")
    try:
        seconds = int(duration) if duration is not None else None
    except (TypeError, ValueError):
        seconds = None
    params = {**values, "duration": seconds}
    return prices.estimate(spec.name, params).usd


def _listed(spec: ModelSpec, values: Mapping[str, Any]) -> bool:
    return prices.estimate(spec.name, {"resolution": values.get("resolution")}).listed


def _shown(values: Mapping[str, Any]) -> str:
    return " and ".join(f"{value} s" if field == "duration" else str(value) for field, value in values.items())
