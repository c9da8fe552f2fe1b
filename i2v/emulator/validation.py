"""Create-request validation against the project's model registry, with zod-like issues.

The vendor validates bodies with zod and answers ``Body validation error!`` with
Expected/Received hints; the issues here mimic that shape. Two deliberate choices:

* Unknown fields are rejected. The vendor may silently drop them, but a client that
  sends ``aspect_ratio`` to a route without one, or misspells a field, should find out
  in tests rather than get a video that ignored its request.
* Numeric strings are accepted for integer fields only on routes that coerce them
  (``Route.coerces_numbers``): the vendor's own sample sends ``"duration": "5"`` to the
  legacy path, while the universal schema is strict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from i2v.api.models import MODELS, Param, Route, find_route

_DATA_IMAGE = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_DATA_ANY = re.compile(r"data:[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_NUMERIC = re.compile(r"\s*[+-]?\d+(?:\.\d*)?\s*")
_SHOWN_CHARS = 60


@dataclass(frozen=True)
class Issue:
    """One problem with a request body, shaped like a zod issue."""

    path: tuple[str, ...]
    expected: str
    received: str
    message: str

    @property
    def field(self) -> str:
        return ".".join(self.path) or "(body)"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": list(self.path),
            "expected": self.expected,
            "received": self.received,
            "message": self.message,
        }


@dataclass
class CheckedCreate:
    """The outcome of checking a create body: the route it targets and the cleaned values."""

    route: Route | None
    values: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.route is not None and not self.issues


def validate_create(path: str, body: Any) -> list[Issue]:
    """Every issue with ``body`` as a create request on ``path``; empty when it is valid."""
    return check_create(path, body).issues


def check_create(path: str, body: Any) -> CheckedCreate:
    """Validate ``body`` for ``path`` and return the cleaned values (numbers coerced)."""
    if not isinstance(body, Mapping):
        return CheckedCreate(None, issues=[_type_issue((), "object", body)])
    model = body.get("model", _MISSING)
    if not isinstance(model, str):
        return CheckedCreate(None, issues=[_type_issue(("model",), "string", model)])
    route = find_route(path, model)
    if route is None:
        served = " | ".join(_show(name) for name in served_models(path))
        issue = Issue(
            ("model",),
            served,
            _show(model),
            f"Invalid model for this endpoint. Expected {served}, received {_show(model)}",
        )
        return CheckedCreate(None, issues=[issue])

    checked = CheckedCreate(route, values={"model": model})
    if route.takes_prompt:
        prompt = body.get("prompt", _MISSING)
        if prompt is not _MISSING or route.requires_prompt:
            _check_prompt(route, prompt, checked)
    image = body.get(route.image_field, _MISSING)
    if route.requires_image or image is not _MISSING:
        main = Param("image_list" if route.image_is_list else "image", required=route.requires_image)
        _check_param(route, route.image_field, main, image, checked)
    known = {"model", *(("prompt",) if route.takes_prompt else ()), route.image_field, *route.params}
    for name, param in route.params.items():
        if param.required and name not in body:
            checked.issues.append(_type_issue((name,), _expected(param), _MISSING))
    for name, value in body.items():
        if name in route.params:
            _check_param(route, name, route.params[name], value, checked)
        elif name not in known:
            allowed = ", ".join(sorted(known))
            shown = _show(name)
            message = f"Unrecognized key {shown}. Expected one of {allowed}, received {shown}"
            checked.issues.append(Issue((str(name),), f"one of {allowed}", shown, message))
    return checked


def served_models(path: str) -> list[str]:
    """The model ids the API accepts on ``path``."""
    served = (spec for spec in MODELS.values() if any(r.path == path for r in spec.routes.values()))
    return [spec.api_id for spec in served]


def is_image_reference(value: str) -> bool:
    """An ``http(s)://`` URL, or a ``data:image/<type>;base64,<payload>`` URI."""
    prefix = _DATA_IMAGE.match(value)
    if prefix:
        return prefix.end() < len(value)
    return _is_http_url(value)


def summary(issues: list[Issue]) -> str:
    """One readable line naming each field with what was expected and received."""
    return "; ".join(f"{issue.field}: {issue.message}" for issue in issues)


_IMAGE_URL = "an http(s) URL or a data:image/<type>;base64,<data> URI"
_URI = "an http(s) URL or a base64 data URI"


class _Missing:
    def __repr__(self) -> str:
        return "undefined"


_MISSING: Any = _Missing()


def _check_prompt(route: Route, value: Any, checked: CheckedCreate) -> None:
    if not _check_string(("prompt",), value, checked):
        return
    size = len(value)
    if size < route.prompt_min:
        checked.issues.append(
            Issue(
                ("prompt",),
                f"at least {route.prompt_min} character(s)",
                f"{size} character(s)",
                f"String must contain at least {route.prompt_min} character(s). "
                f"Expected at least {route.prompt_min}, received {size}",
            )
        )
    elif route.prompt_max is not None and size > route.prompt_max:
        checked.issues.append(
            Issue(
                ("prompt",),
                f"at most {route.prompt_max} character(s)",
                f"{size} character(s)",
                f"String must contain at most {route.prompt_max} character(s). "
                f"Expected at most {route.prompt_max}, received {size}",
            )
        )
    else:
        checked.values["prompt"] = value


def _check_string(path: tuple[str, ...], value: Any, checked: CheckedCreate) -> bool:
    if isinstance(value, str):
        return True
    checked.issues.append(_type_issue(path, "string", value))
    return False


def _expected(param: Param) -> str:
    return (
        {"integer": "number", "number": "number", "boolean": "boolean"}.get(param.type, "string")
        if param.type
        not in (
            "image_list",
            "media_list",
            "list",
        )
        else "array"
    )


def _check_param(route: Route, name: str, param: Param, value: Any, checked: CheckedCreate) -> None:
    path = (name,)
    if param.type in ("integer", "number"):
        number = _as_number(value, coerce=route.coerces_numbers, integer=param.type == "integer")
        if number is None:
            expected = "integer" if param.type == "integer" and _js_type(value) in ("number", "float") else "number"
            checked.issues.append(_type_issue(path, expected, value))
            return
        value = number
        if not _in_range(path, param, number, checked):
            return
    elif param.type == "boolean":
        if not isinstance(value, bool):
            checked.issues.append(_type_issue(path, "boolean", value))
            return
    elif param.type == "object":
        if not isinstance(value, (dict, list)):
            checked.issues.append(_type_issue(path, "object", value))
            return
        checked.values[name] = value
        return
    elif param.type in ("image_list", "media_list", "list"):
        if not isinstance(value, list):
            checked.issues.append(_type_issue(path, "array", value))
            return
        if param.max_items is not None and len(value) > param.max_items:
            checked.issues.append(
                Issue(
                    path,
                    f"at most {param.max_items} item(s)",
                    f"{len(value)} item(s)",
                    f"Array must contain at most {param.max_items} element(s)",
                )
            )
            return
        for index, item in enumerate(value):
            item_path = (name, str(index))
            if not isinstance(item, str):
                checked.issues.append(_type_issue(item_path, "string", item))
                return
            if param.type == "image_list" and not is_image_reference(item):
                checked.issues.append(_url_issue(item_path, _IMAGE_URL, item))
                return
            if param.type == "media_list" and not (_DATA_ANY.match(item) or _is_http_url(item)):
                checked.issues.append(_url_issue(item_path, _URI, item))
                return
        checked.values[name] = value
        return
    elif not isinstance(value, str):
        if param.numeric_strings and route.coerces_numbers and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        else:
            checked.issues.append(_type_issue(path, "string", value))
            return
    if param.type == "image" and not is_image_reference(value):
        checked.issues.append(_url_issue(path, _IMAGE_URL, value))
        return
    if param.type in ("uri", "video", "audio", "mask") and not (_DATA_ANY.match(value) or _is_http_url(value)):
        checked.issues.append(_url_issue(path, _URI, value))
        return
    if param.type == "string" and param.max_length is not None and len(value) > param.max_length:
        checked.issues.append(
            Issue(
                path,
                f"at most {param.max_length} character(s)",
                f"{len(value)} character(s)",
                f"String must contain at most {param.max_length} character(s)",
            )
        )
        return
    if param.choices is not None and value not in param.choices:
        expected = " | ".join(_show(choice) for choice in param.choices)
        checked.issues.append(
            Issue(
                path,
                expected,
                _show(value),
                f"Invalid enum value. Expected {expected}, received {_show(value)}",
            )
        )
        return
    checked.values[name] = value


def _in_range(path: tuple[str, ...], param: Param, number: float, checked: CheckedCreate) -> bool:
    if param.minimum is not None and number < param.minimum:
        checked.issues.append(
            Issue(
                path,
                f">= {param.minimum}",
                str(number),
                f"Number must be greater than or equal to {param.minimum}",
            )
        )
        return False
    if param.maximum is not None and number > param.maximum:
        checked.issues.append(
            Issue(path, f"<= {param.maximum}", str(number), f"Number must be less than or equal to {param.maximum}")
        )
        return False
    return True


def _as_number(value: Any, *, coerce: bool, integer: bool) -> int | float | None:
    if integer:
        return _as_integer(value, coerce=coerce)
    if isinstance(value, bool):
        return None
    if coerce and isinstance(value, str) and _NUMERIC.fullmatch(value):
        value = float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None


def _as_integer(value: Any, *, coerce: bool) -> int | None:
    if isinstance(value, bool):
        return None
    if coerce and isinstance(value, str) and _NUMERIC.fullmatch(value):
        value = float(value)
    if isinstance(value, int):
        return value
    # JSON has one number type: 5.0 is the integer 5 to a JavaScript validator.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _is_http_url(value: str) -> bool:
    if any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _type_issue(path: tuple[str, ...], expected: str, value: Any) -> Issue:
    received = _js_type(value)
    if value is _MISSING:
        message = f"Required. Expected {expected}, received undefined"
    else:
        message = f"Expected {expected}, received {received}"
    return Issue(path, expected, received, message)


def _url_issue(path: tuple[str, ...], expected: str, value: str) -> Issue:
    shown = _show(value)
    return Issue(path, expected, shown, f"Invalid url. Expected {expected}, received {shown}")


def _js_type(value: Any) -> str:
    """The type name a JavaScript validator would report for a JSON value."""
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number"
    if isinstance(value, float):
        return "number" if value.is_integer() else "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 1] + "…"
        return f"'{shown}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)
