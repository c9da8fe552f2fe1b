"""Turning a vendor's request schema into the catalogue's compact form: fields and routes.

Each field becomes its kind in the pipeline's terms (``image``, ``integer``, ``video``, ...)
with its enum, range, default and whether it is required (:func:`field`); a schema on a path
becomes a route with the field a row's ``image_url`` fills (:func:`route_from_schema`); and a
route that needs an input the pipeline cannot give says why (:func:`unsupported`). Where the
schemas come from is :mod:`i2v.api.catalogue.vendor_docs`' business.
"""

from __future__ import annotations

import re
from typing import Any

UNIVERSAL_PATHS = ("/v2/video/generations", "/v1/video/generations", "/video/generations")
UNIVERSAL_PATH = UNIVERSAL_PATHS[0]
_MAX_DESCRIPTION = 160

_UNSUPPORTED_KINDS = {
    "video": "a video",
    "media_list": "videos or audio tracks",
    "audio": "an audio track",
    "mask": "a mask",
    "object": "structured input",
    "list": "a list",
}


def _short(text: Any) -> str:
    """The first sentence of a vendor description, plain, bounded."""
    if not isinstance(text, str):
        return ""
    plain = re.sub(r"\s+", " ", re.sub(r"[`*]|<[^>]+>", "", text)).strip()
    first = re.split(r"(?<=[.!?])\s", plain, maxsplit=1)[0]
    return first if len(first) <= _MAX_DESCRIPTION else first[: _MAX_DESCRIPTION - 1].rstrip() + "…"


def _kind(name: str, prop: dict[str, Any]) -> str:
    """What a field holds, in the pipeline's terms."""
    lowered = name.lower()
    if "anyOf" in prop or "oneOf" in prop:
        variants = prop.get("anyOf") or prop.get("oneOf") or []
        if "image" in lowered and all(v.get("type") in ("string", "array") for v in variants):
            return "image"
        return "object"
    kind = prop.get("type", "string")
    if kind == "array":
        items = prop.get("items") or {}
        if items.get("type") == "string" and "image" in lowered:
            return "image_list"
        if items.get("type") == "string" and ("video" in lowered or "audio" in lowered):
            return "media_list"
        return "list" if items.get("type") in ("string", "integer", "number") else "object"
    if kind == "object":
        return "object"
    if kind == "string" and (prop.get("format") == "uri" or lowered.endswith("_url") or lowered == "first_frame_image"):
        if "mask" in lowered:
            return "mask"
        if "image" in lowered:
            return "image"
        if "video" in lowered:
            return "video"
        if "audio" in lowered:
            return "audio"
        return "uri"
    if kind in ("string", "integer", "number", "boolean"):
        return str(kind)
    return "object"


def _number(kind: str, value: Any) -> Any:
    """Vendor files write some numbers as strings (``"default": "10"``): keep the value, not the spelling."""
    if kind == "integer" and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "number" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def field(name: str, prop: dict[str, Any], required: bool) -> dict[str, Any]:
    """One schema property as a catalogue field: kind, enum, range, default, description."""
    kind = _kind(name, prop)
    out: dict[str, Any] = {"kind": kind}
    if required:
        out["required"] = True
    if "enum" in prop:
        out["enum"] = [_number(kind, v) for v in prop["enum"]]
        if kind == "string" and all(isinstance(v, str) and re.fullmatch(r"\d+", v) for v in prop["enum"]):
            # Numbers the API wants as strings ("5", "10"): rows may write them either way.
            out["numeric_strings"] = True
    if "default" in prop and prop["default"] is not None:
        out["default"] = _number(kind, prop["default"])
    for key, ours in (("minimum", "min"), ("maximum", "max"), ("minLength", "min_length"), ("maxLength", "max_length")):
        if key in prop:
            out[ours] = prop[key]
    for key, ours in (("minItems", "min_items"), ("maxItems", "max_items")):
        if key in prop and kind == "image_list":
            out[ours] = prop[key]
    if kind == "string" and "enum" not in prop and re.fullmatch(r"\d+", str(prop.get("default", ""))):
        out["numeric_strings"] = True
    description = _short(prop.get("description"))
    if description:
        out["description"] = description
    return out


def route_name(path: str) -> str:
    """``universal`` for any spelling of the universal path, else ``legacy``."""
    return "universal" if path in UNIVERSAL_PATHS else "legacy"


def route_from_schema(
    schema: dict[str, Any], path: str, source: str, sample: dict[str, str] | None = None
) -> dict[str, Any]:
    """The catalogue's route for a create ``schema`` served on ``path``, documented in the file ``source``.

    ``sample`` holds the fields a documentation page's own sample sends on a path its schema
    file does not document (wan2.2's legacy sample sends ``"duration": "5"``).
    """
    required = set(schema.get("required") or [])
    for name, prop in schema["properties"].items():
        # One vendor file marks a field required inside the field itself.
        if prop.get("required") is True:
            required.add(name)
    fields = {
        name: field(name, prop, name in required)
        for name, prop in sorted(schema["properties"].items())
        if name != "model"
    }
    legacy = route_name(path) == "legacy"
    out: dict[str, Any] = {"name": route_name(path), "path": path}
    if legacy:
        # The vendor's own sample for the legacy path sends numbers as strings ("duration": "5").
        out["coerces_numbers"] = True
    for name, value in sorted((sample or {}).items()):
        if name not in fields and name != "model" and re.fullmatch(r"\d+", value):
            # The only value the vendor shows for a field of this path: the one it takes.
            fields[name] = {"kind": "integer", "enum": [int(value)], "default": int(value), "from_sample": True}
    out["image_field"] = _primary_image(fields)
    out["fields"] = fields
    out["source"] = source
    return out


def _primary_image(fields: dict[str, dict[str, Any]]) -> str | None:
    """The field a row's ``image_url`` column fills: ``image_url`` itself, else the model's first frame."""
    images = [name for name, f in fields.items() if f["kind"] in ("image", "image_list")]
    for name in ("image_url", "first_frame_image"):
        if name in images:
            return name
    required = [name for name in images if fields[name].get("required")]
    chosen = required or images
    return chosen[0] if chosen else None


def image_fields(route: dict[str, Any]) -> list[str]:
    """The route's fields that take an image (one or a list)."""
    return [name for name, f in route["fields"].items() if f["kind"] in ("image", "image_list")]


def unsupported(route: dict[str, Any]) -> str | None:
    """Why the pipeline's rows cannot run this route (a required video, mask, ...), or None if they can."""
    needs = [
        f"{name} ({_UNSUPPORTED_KINDS[f['kind']]})"
        for name, f in route["fields"].items()
        if f.get("required") and f["kind"] in _UNSUPPORTED_KINDS
    ]
    if needs:
        return "needs " + ", ".join(needs) + ", which the pipeline's rows do not carry"
    return None
