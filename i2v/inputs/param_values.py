"""A row's parameter cells as the request fields its model's schema takes.

Which columns are parameters (any model's, by name, case and spaces aside) and which are
the row's own (:data:`RESERVED_COLUMNS`); a run default standing in for a blank cell; the
model's own default for a field neither gives; and each value coerced by the catalogue's
schema (:mod:`i2v.api.models`): numbers with their choices and ranges, numbers some models
want spelt as strings, booleans, URLs, choices whose case differs between models. Image
fields are left to :mod:`i2v.inputs.image_cells`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from i2v.api.models import EXPANSION_ALIASES, IMAGE_KINDS, MODELS, UNOFFERED_KINDS, ModelSpec, Param, Route
from i2v.inputs.comparison import MODELS_COLUMN
from i2v.inputs.csv_reader import REQUIRED_COLUMNS, ROW_INDEX_COLUMN
from i2v.inputs.image_cells import ImageCells
from i2v.inputs.row import CellProblem

#: Columns that are the row's own, never a model's parameter.
RESERVED_COLUMNS = ("id", "model", MODELS_COLUMN, "api_path", *REQUIRED_COLUMNS, ROW_INDEX_COLUMN)
#: Every parameter some model's route has (rows name them case-insensitively).
KNOWN_PARAMS = frozenset(
    name for spec in MODELS.values() for route in spec.routes.values() for name in route.params
) | frozenset(EXPANSION_ALIASES)
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}

#: (request fields, further images, what identifies those images for the row key).
RequestParams = tuple[dict[str, Any], dict[str, tuple[tuple[str, ...], bool]], dict[str, Any]]


def canonical_name(column: str) -> str:
    """A column's name as a parameter's: case and surrounding spaces aside."""
    return column.strip().lower()


def request_params(
    spec: ModelSpec,
    route: Route,
    cells: Mapping[str, str],
    *,
    defaults: Mapping[str, Any],
    images: ImageCells,
    compared: bool,
) -> RequestParams:
    """The row's parameters for ``spec`` on ``route``: its cells over the run's defaults, over the model's."""
    given: dict[str, tuple[Any, str]] = {}
    for name, value in defaults.items():
        given[name] = (value, f"{name} (run default)")
    for column, value in cells.items():
        if column in RESERVED_COLUMNS or not value.strip():
            continue
        name = canonical_name(column)
        if name in KNOWN_PARAMS:
            given[name] = (value, column)
    params: dict[str, Any] = {}
    extra_images: dict[str, tuple[tuple[str, ...], bool]] = {}
    identities: dict[str, Any] = {}
    for name, (value, source) in given.items():
        # Prompt expansion has two spellings; a route takes the one its schema has.
        target = name if name in route.params else route.expansion_field if name in EXPANSION_ALIASES else None
        param = route.params.get(target) if target else None
        if (target is None or param is None) and compared:
            # A comparison asks each model for what it can do: a setting it has no field for
            # is not sent to it (its manifest row's params say what was).
            continue
        if target is None or param is None:
            supported = ", ".join(sorted(n for n, p in route.params.items() if p.offered)) or "none"
            raise CellProblem(
                source, f"is not a parameter of {spec.name} on the {route.name} path (supported: {supported})"
            )
        if not param.offered:
            raise CellProblem(source, f"of {spec.name} takes {UNOFFERED_KINDS[param.type]}, which rows cannot give")
        if param.type in IMAGE_KINDS:
            refs, ids = images.param_cell(str(value), param, source, spec)
            extra_images[target] = (refs, param.type == "image_list")
            identities[target] = ids if param.type == "image_list" else ids[0]
            continue
        params[target] = coerce(param, value, field=source, model=spec.name)
    for name, param in route.params.items():
        if name not in params and name not in extra_images and param.default is not None and param.offered:
            params[name] = param.default
    return dict(sorted(params.items())), dict(sorted(extra_images.items())), identities


def coerce(param: Param, value: Any, *, field: str, model: str) -> Any:
    """Turn a CSV cell (or a run default) into the value the model's schema wants, or explain why not.

    Everything here comes from the schema: integers and numbers with their enums and ranges,
    numbers some models want spelt as strings, enums whose case differs between models.
    """
    text = str(value).strip()
    if param.type in ("integer", "number") or param.numeric_strings:
        pattern = r"[+-]?\d+" if param.type != "number" else r"[+-]?(\d+(\.\d*)?|\.\d+)"
        if isinstance(value, bool) or not re.fullmatch(pattern, text):
            kind = "a number" if param.type == "number" else "a whole number"
            raise CellProblem(field, f"must be {kind}, got {text!r} ({model})")
        number: int | float = float(text) if param.type == "number" else int(text)
        if param.choices and not any(_same_number(number, choice) for choice in param.choices):
            raise CellProblem(field, f"must be one of {_choices(param)}, got {text} ({model})")
        if param.minimum is not None and number < param.minimum:
            raise CellProblem(field, f"must be at least {_number(param.minimum)}, got {text} ({model})")
        if param.maximum is not None and number > param.maximum:
            raise CellProblem(field, f"must be at most {_number(param.maximum)}, got {text} ({model})")
        if param.numeric_strings:
            # Sent in the schema's own spelling ("5", not 5 or "05").
            return next((c for c in param.choices or () if _same_number(number, c)), str(int(number)))
        return number
    if param.type == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise CellProblem(field, f"must be true or false, got {text!r}")
    if param.type == "uri":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CellProblem(field, f"must be an http(s) URL, got {text!r}")
        return text
    if param.choices:
        # Vendors differ in case ('480p' vs '480P'); accept either, send the model's spelling.
        for choice in param.choices:
            if str(choice).lower() == text.lower():
                return choice
        raise CellProblem(field, f"must be one of {_choices(param)}, got {text!r} ({model})")
    if not text:
        raise CellProblem(field, "is empty")
    if param.max_length is not None and len(text) > param.max_length:
        raise CellProblem(field, f"has {len(text):,} characters; {model} accepts at most {param.max_length}")
    return text


def _same_number(number: float, choice: Any) -> bool:
    try:
        return float(choice) == number
    except (TypeError, ValueError):
        return False


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _choices(param: Param) -> str:
    return ", ".join(str(choice) for choice in param.choices or ())
