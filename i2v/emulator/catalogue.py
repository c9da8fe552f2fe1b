"""``GET /v1/models``: the live model catalogue, as the vendor's "Complete Model List" page describes it.

The vendor's ``models`` OpenAPI file and that page are the contract. No key is needed; the
same data is served at ``/v1/models``, ``/models`` and ``/api/v1/models``, and one model at
``/model/{id}`` (singular, outside ``/v1``; ``{"object": "model", "data": {...}}`` or 404).

* Each entry carries ``id``, ``aliases``, ``type``, ``info`` (``name``, ``developer``,
  ``docsJson``) and ``tags``; ``include`` attaches ``pricing``, ``modalities``,
  ``capabilities`` or ``all`` of them (``details=true`` or ``1`` is ``all``). Values may be
  comma-separated or repeated; unknown ones are ignored.
* Filters (``id``, ``type``, ``tags``, ``modalities``, ``input_modalities``,
  ``output_modalities``, ``capabilities``) are case-insensitive; the values of one are OR-ed,
  different ones AND-ed. ``id`` matches an id or an alias.
* Answers carry a weak ``ETag``; a request whose ``If-None-Match`` holds it gets 304.

The emulator serves every model of the project's catalogue. ``pricing`` follows the
shipped, dated price table, converted to dollars: ``variants`` by resolution, ``fixed`` when
a model has one rate and no resolution to choose, and ``variable`` for a model the table
does not price: the emulator never invents a price.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from i2v.api import prices
from i2v.api.models import MODELS, UNIVERSAL_PATH, ModelSpec

CATALOGUE_PATHS = ("/v1/models", "/models", "/api/v1/models")
MODEL_PATH = "/model/{id:path}"
SECTIONS = ("pricing", "modalities", "capabilities")
FILTERS = ("id", "type", "tags", "modalities", "input_modalities", "output_modalities", "capabilities")
#: The endpoint type of the vendor's video models (its own example item).
VIDEO_TYPE = "internal/video-generations/submit"
LEGACY_TYPE = "internal/video-generations/legacy"
_TAGS = ("playground:video",)
_SOUND_FIELDS = ("generate_audio", "sound", "audio")


def sections(params: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The optional sections a query asks for (``include``, ``details``)."""
    wanted: set[str] = set()
    for name, value in params:
        if name == "details" and value.strip().lower() in ("true", "1"):
            wanted.update(SECTIONS)
        elif name == "include":
            for part in _values(value):
                wanted.update(SECTIONS if part == "all" else {part} & set(SECTIONS))
    return frozenset(wanted)


def filters(params: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """The filters a query sets, each a set of lower-case values (one parameter's values are OR-ed)."""
    found: dict[str, set[str]] = {}
    for name, value in params:
        if name in FILTERS:
            found.setdefault(name, set()).update(_values(value))
    return {name: values for name, values in found.items() if values}


def entry(spec: ModelSpec, wanted: frozenset[str]) -> dict[str, Any]:
    """One model's item, with the ``wanted`` sections."""
    route = spec.route()
    kind = VIDEO_TYPE if route.path == UNIVERSAL_PATH else LEGACY_TYPE
    item: dict[str, Any] = {
        "id": spec.api_id,
        "info": {
            "name": spec.summary or spec.api_id,
            "developer": spec.api_id.split("/", 1)[0],
            "docsJson": f"https://api.aimlapi.com/docs-json?model={_quote(spec.api_id)}&endpoint={_quote(kind)}",
        },
        "type": kind,
        "aliases": list(spec.aliases),
        "tags": list(_TAGS),
    }
    if "modalities" in wanted:
        item["modalities"] = _modalities(spec)
    if "capabilities" in wanted:
        item["capabilities"] = _capabilities(spec)
    if "pricing" in wanted:
        item["pricing"] = pricing(spec)
    return item


def pricing(spec: ModelSpec) -> dict[str, Any]:
    """The model's ``pricing`` block: what the shipped table says, in dollars per second."""
    rates = prices.table_rates(spec.api_id)
    if not rates:
        return {"kind": "variable", "currency": "USD"}
    resolution = spec.route().params.get("resolution")
    if len(rates) == 1 and resolution is None:
        (rate,) = rates.values()
        return {"kind": "fixed", "currency": "USD", "units": [{"name": "second", "price": _usd(rate), "per": 1}]}
    # Quoted in the spelling the model's schema uses ("1080P" for wan2.2).
    spelt = {str(c).lower(): str(c) for c in (resolution.choices or ())} if resolution is not None else {}
    return {
        "kind": "variants",
        "currency": "USD",
        "dimensions": ["resolution"],
        "variants": [
            {"when": {"resolution": spelt.get(key, key)}, "price": _usd(rate), "unit": "second", "per": 1}
            for key, rate in rates.items()
        ],
    }


def listing(query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The catalogue answer: every model the filters keep, with the sections asked for."""
    params = list(query)
    wanted = sections(params)
    chosen = filters(params)
    data = [entry(spec, wanted) for spec in MODELS.values()]
    return {"object": "list", "data": [item for item in data if _kept(item, chosen)]}


def one(name: str, query: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
    """``GET /model/{id}``: the model named (an id or alias, any case), or None."""
    wanted = sections(list(query))
    needle = name.strip().lower()
    for spec in MODELS.values():
        if needle in {n.lower() for n in (spec.api_id, *spec.aliases)}:
            return {"object": "model", "data": entry(spec, wanted)}
    return None


def etag(document: Mapping[str, Any]) -> str:
    """A weak validator of the whole answer: any change to it changes the tag."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return f'W/"{len(text):x}-{hashlib.blake2b(text, digest_size=12).hexdigest()}"'


def matches(if_none_match: str, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (weak comparison, or ``*``)."""
    given = [t.strip().removeprefix("W/") for t in if_none_match.split(",") if t.strip()]
    return "*" in given or tag.removeprefix("W/") in given


def _kept(item: Mapping[str, Any], chosen: Mapping[str, set[str]]) -> bool:
    spec = MODELS[item["id"]]
    modalities = _modalities(spec)
    have: dict[str, set[str]] = {
        "id": {n.lower() for n in (item["id"], *item["aliases"])},
        "type": {item["type"].lower()},
        "tags": {t.lower() for t in item["tags"]},
        "modalities": set(modalities["input"]) | set(modalities["output"]),
        "input_modalities": set(modalities["input"]),
        "output_modalities": set(modalities["output"]),
        "capabilities": set(_capabilities(spec)),
    }
    return all(values & have[name] for name, values in chosen.items())


def _modalities(spec: ModelSpec) -> dict[str, list[str]]:
    route = spec.route()
    inputs = {"image"} if route.image_field or route.image_params else set()
    if route.takes_prompt:
        inputs.add("text")
    inputs.update(
        {"video": "video", "audio": "audio", "media_list": "video"}[p.type]
        for p in route.params.values()
        if p.type in ("video", "audio", "media_list")
    )
    return {"input": sorted(inputs), "output": ["video"]}


def _capabilities(spec: ModelSpec) -> list[str]:
    found = {"image_to_video"}
    if any(name in spec.route().params for name in _SOUND_FIELDS):
        found.add("audio_generation")
    return sorted(found)


def _values(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def _usd(rate: float) -> float:
    return round(rate, 6)


def _quote(text: str) -> str:
    return text.replace("/", "%2F")
