"""``i2v models``: the catalogue as people and scripts read it.

Every catalogued image-to-video model is listed, the ones the pipeline cannot run with the
reason; each supported one with its fields (kind, choices or range, default) and what its
defaults cost by the dated price table.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from i2v.api import prices
from i2v.api.models import DEFAULT_MODEL, MODELS, ModelSpec, Param, Route, get_model
from i2v.errors import ConfigError


def command(args: argparse.Namespace) -> int:
    """``i2v models [NAME]``: every model, or the one named in full, as text or ``--json``."""
    if args.name:
        try:
            specs = [get_model(args.name)]
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
    else:
        specs = list(MODELS.values())
    if args.json:
        print(json.dumps([as_dict(spec) for spec in specs], indent=1))
    else:
        print(text(specs, detailed=bool(args.name)))
    return 0


def _default_price(spec: ModelSpec) -> dict[str, Any] | None:
    """What a row with no resolution or duration costs on ``spec``, when the table lists it."""
    if not prices.listed(spec.api_id):
        return None
    params = spec.route().params
    chosen = {name: params[name].default for name in ("resolution", "duration") if name in params}
    price = prices.estimate(spec.api_id, chosen)
    return {
        "credits": price.credits,
        "usd": price.usd,
        "seconds": price.seconds,
        "resolution": chosen.get("resolution"),
    }


def _field(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": param.type}
    if param.choices is not None:
        out["choices"] = list(param.choices)
    if param.minimum is not None:
        out["min"] = param.minimum
    if param.maximum is not None:
        out["max"] = param.maximum
    if param.default is not None:
        out["default"] = param.default
    if param.required:
        out["required"] = True
    if not param.offered:
        out["offered"] = False
    return out


def _route(route: Route) -> dict[str, Any]:
    return {
        "name": route.name,
        "path": route.path,
        "image_field": route.image_field,
        "prompt": {"min": route.prompt_min, "max": route.prompt_max} if route.takes_prompt else None,
        "fields": {name: _field(param) for name, param in route.params.items()},
    }


def as_dict(spec: ModelSpec) -> dict[str, Any]:
    """One model for ``--json``."""
    return {
        "id": spec.api_id,
        "title": spec.summary,
        "aliases": list(spec.aliases),
        "supported": spec.supported,
        "reason": spec.unsupported,
        "default": spec.api_id == DEFAULT_MODEL,
        "routes": [_route(route) for route in spec.routes.values()],
        "price": {"table_taken": prices.PRICES_TAKEN, "per_second_cny": dict(prices.listed(spec.api_id))},
        "defaults_cost": _default_price(spec),
    }


def _describe(param: Param) -> str:
    text: str = param.type
    if param.choices is not None:
        text += " one of " + ", ".join(map(str, param.choices))
    elif param.minimum is not None or param.maximum is not None:
        low = "" if param.minimum is None else f"{param.minimum:g}"
        high = "" if param.maximum is None else f"{param.maximum:g}"
        text += f" {low}..{high}"
    if param.default is not None:
        text += f", default {param.default}"
    if param.required:
        text += ", required"
    if not param.offered:
        text += " (not from rows)"
    return text


def text(specs: list[ModelSpec], *, detailed: bool = False) -> str:
    """The catalogue as lines: a model per block, fields indented, unsupported ones with the reason."""
    lines: list[str] = []
    for spec in specs:
        marker = " (default)" if spec.api_id == DEFAULT_MODEL else ""
        also = f"  [also: {', '.join(spec.aliases)}]" if spec.aliases else ""
        lines.append(f"{spec.api_id}{marker}  {spec.summary}{also}")
        if spec.unsupported:
            lines.append(f"  unsupported: {spec.unsupported}")
            if not detailed:
                continue
        cost = _default_price(spec)
        if cost:
            lines.append(
                f"  defaults cost about {prices.credits(cost['credits'])} credits (${cost['usd']:.2f}) a video"
                f" ({cost['resolution'] or '-'}, {cost['seconds']} s; prices taken {prices.PRICES_TAKEN})"
            )
        else:
            lines.append("  price: not in the dated table (the live catalogue prices it when the API is reachable)")
        for route in spec.routes.values():
            default = " (default)" if route.name == spec.default_route else ""
            lines.append(f"  {route.name}{default}: POST {route.path}; the image goes in {route.image_field}")
            for name, param in route.params.items():
                if param.offered or detailed:
                    lines.append(f"    {name}: {_describe(param)}")
    supported = sum(spec.supported for spec in specs)
    if len(specs) > 1:
        lines.append(f"{len(specs)} models, {supported} supported; `i2v models NAME` shows one, --json for scripts")
    return "\n".join(lines)
