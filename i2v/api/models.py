"""The model catalogue: which image-to-video models exist, where their endpoints live, what they accept.

The catalogue is generated from the vendor's own per-model OpenAPI files by
:mod:`i2v.api.catalogue.build` (``make models``) and ships as ``catalogue/models.json``;
``tests/test_models.py`` regenerates it from the vendor's files, so drift shows up as a
failing test. Nothing about a model is written here by hand.

Each model is served on one or more *routes*: the universal path
(``/v2/video/generations``) and, for some, a legacy vendor path
(``/v2/generate/video/<vendor>/generation``). A route has its own request schema: field
names, kinds, enums, ranges and defaults differ from model to model (``enhance_prompt`` /
``enable_prompt_expansion``, ``480p`` / ``480P``, durations sent as numbers or as
strings), and the row validator and the emulator both read them from here.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any, Literal, cast

UNIVERSAL_PATH = "/v2/video/generations"
LEGACY_PATH = "/v2/generate/video/alibaba/generation"

RouteName = Literal["universal", "legacy"]

#: What a field holds. ``image`` and ``image_list`` take what a row's ``image_url`` takes;
#: the kinds in :data:`UNOFFERED_KINDS` cannot come from a row.
ParamType = Literal[
    "string",
    "integer",
    "number",
    "boolean",
    "uri",
    "image",
    "image_list",
    "video",
    "audio",
    "mask",
    "media_list",
    "list",
    "object",
]
IMAGE_KINDS = frozenset({"image", "image_list"})
UNOFFERED_KINDS: Mapping[str, str] = {
    "video": "a video",
    "audio": "an audio track",
    "mask": "a mask",
    "media_list": "videos or audio tracks",
    "list": "a list",
    "object": "structured input",
}

#: Statuses after which a job is still running. The vendor's schema lists ``queued`` and
#: ``generating``; its own sample client also waits on ``waiting`` and ``active``, and its
#: Python SDK on ``processing``; the legacy runway schema answers ``dreaming``.
RUNNING_STATUSES = frozenset({"queued", "generating", "waiting", "active", "processing", "dreaming"})
COMPLETED_STATUS = "completed"
ERROR_STATUS = "error"
#: Statuses that clearly end a job without a video: ``error`` is the documented one; the
#: others are words any job API may use for the same end. Any other unknown status is
#: not success either, but it is polled until the job's deadline.
FAILED_STATUSES = frozenset({ERROR_STATUS, "failed", "cancelled", "canceled", "expired", "rejected"})

#: The user-facing name of prompt expansion; routes may spell it differently.
EXPANSION_ALIASES = ("enhance_prompt", "enable_prompt_expansion")

DEFAULT_MODEL = "alibaba/wan2.5-i2v-preview"


@dataclass(frozen=True)
class Param:
    """One request field of a route (besides ``model``, ``prompt`` and the main image)."""

    type: ParamType
    choices: tuple[str | int | float, ...] | None = None
    default: str | int | float | bool | None = None
    description: str = ""
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    max_items: int | None = None
    #: The schema wants a number spelt as a string (``"duration": "5"``).
    numeric_strings: bool = False

    @property
    def offered(self) -> bool:
        """Whether a row can give this field (videos, audio, masks and structures it cannot)."""
        return self.type not in UNOFFERED_KINDS


@dataclass(frozen=True)
class Route:
    """A model's request schema on one endpoint."""

    name: RouteName
    params: Mapping[str, Param]
    path: str = UNIVERSAL_PATH
    prompt_min: int = 1
    #: None: the vendor publishes no limit.
    prompt_max: int | None = 800
    requires_image: bool = True
    #: The field a row's ``image_url`` fills (``image_url`` for most models).
    image_field: str = "image_url"
    #: The main image field takes a list (``image_urls``, ``image_list``): the image goes as one.
    image_is_list: bool = False
    #: Whether the schema has a prompt at all (effect models take none), and must have one.
    takes_prompt: bool = True
    requires_prompt: bool = True
    #: Legacy endpoints convert numeric strings (the vendor's own sample sends
    #: ``"duration": "5"``); the universal schema is strict.
    coerces_numbers: bool = False

    @property
    def expansion_field(self) -> str | None:
        return next((name for name in EXPANSION_ALIASES if name in self.params), None)

    @property
    def image_params(self) -> list[str]:
        """Image fields besides the main one (``last_image_url``, ``reference_image_urls``, ...)."""
        return [name for name, param in self.params.items() if param.type in IMAGE_KINDS]


@dataclass(frozen=True)
class ModelSpec:
    """A model users can ask for by ``name`` or an alias; ``api_id`` is what the API expects."""

    name: str
    api_id: str
    routes: Mapping[RouteName, Route]
    default_route: RouteName
    aliases: tuple[str, ...] = ()
    summary: str = ""
    notes: tuple[str, ...] = field(default=())
    #: Why the pipeline cannot run this model (None when it can).
    unsupported: str | None = None
    #: How long its result URLs last, where the vendor's documentation says (None: unstated).
    url_ttl_seconds: int | None = None

    @property
    def supported(self) -> bool:
        return self.unsupported is None

    def route(self, name: RouteName | None = None) -> Route:
        chosen = name or self.default_route
        try:
            return self.routes[chosen]
        except KeyError:
            offered = ", ".join(sorted(self.routes))
            raise KeyError(f"{self.name} is not served on the {chosen} path (only: {offered})") from None


@cache
def catalogue() -> dict[str, Any]:
    """The shipped catalogue file, as generated (see :mod:`i2v.api.catalogue.build`)."""
    text = resources.files("i2v.api.catalogue").joinpath("models.json").read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))


def _param(raw: Mapping[str, Any]) -> Param:
    choices = raw.get("enum")
    return Param(
        type=raw["kind"],
        choices=tuple(choices) if choices is not None else None,
        default=raw.get("default"),
        description=raw.get("description", ""),
        required=bool(raw.get("required")),
        minimum=raw.get("min"),
        maximum=raw.get("max"),
        max_length=raw.get("max_length"),
        max_items=raw.get("max_items"),
        numeric_strings=bool(raw.get("numeric_strings")),
    )


def _route(raw: Mapping[str, Any]) -> Route:
    fields: Mapping[str, Any] = raw["fields"]
    image_field = raw.get("image_field") or "image_url"
    image = fields.get(image_field, {})
    prompt = fields.get("prompt")
    params = {name: _param(f) for name, f in fields.items() if name not in ("prompt", image_field)}
    return Route(
        name=raw["name"],
        params=params,
        path=raw["path"],
        prompt_min=max(1, int((prompt or {}).get("min_length", 1))),
        prompt_max=(prompt or {}).get("max_length"),
        requires_image=bool(image.get("required")),
        image_field=image_field,
        image_is_list=image.get("kind") == "image_list",
        takes_prompt=prompt is not None,
        requires_prompt=bool((prompt or {}).get("required")),
        coerces_numbers=bool(raw.get("coerces_numbers")),
    )


def _spec(raw: Mapping[str, Any]) -> ModelSpec:
    routes: dict[RouteName, Route] = {route["name"]: _route(route) for route in raw["routes"]}
    # A limit published for one path of a model holds on the other (the same model reads the
    # prompt): wan2.5's universal schema leaves out the 800 characters its legacy one states.
    limits = [r.prompt_max for r in routes.values() if r.prompt_max is not None]
    if limits:
        routes = {name: replace(r, prompt_max=r.prompt_max or min(limits)) for name, r in routes.items()}
    reason = None if raw["supported"] else raw.get("reason", "not supported")
    return ModelSpec(
        name=raw["id"],
        api_id=raw["id"],
        routes=routes,
        default_route="universal" if "universal" in routes or not routes else "legacy",
        aliases=tuple(raw.get("aliases", ())),
        summary=raw.get("title", ""),
        unsupported=reason,
        url_ttl_seconds=raw.get("url_ttl_seconds"),
    )


#: Every catalogued image-to-video model, supported or not, by its API id.
MODELS: Mapping[str, ModelSpec] = {raw["id"]: _spec(raw) for raw in catalogue()["models"]}
#: Every path a create may be sent to: the universal one first, then the legacy vendor paths.
CREATE_PATHS: tuple[str, ...] = (
    UNIVERSAL_PATH,
    *sorted({r.path for spec in MODELS.values() for r in spec.routes.values()} - {UNIVERSAL_PATH}),
)

_BY_ANY_NAME: Mapping[str, ModelSpec] = {
    name: spec for spec in MODELS.values() for name in (spec.name, spec.api_id, *spec.aliases)
}


def get_model(name: str) -> ModelSpec:
    """Look a model up by its name, API id or alias; ``KeyError`` suggests close names."""
    try:
        return _BY_ANY_NAME[name.strip()]
    except KeyError:
        close = difflib.get_close_matches(name.strip(), list(_BY_ANY_NAME), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KeyError(f"unknown model {name!r} ({hint}`i2v models` lists all {len(MODELS)})") from None


def lookup(name: str) -> ModelSpec | None:
    """A model by name, API id or alias, or None."""
    return _BY_ANY_NAME.get(name.strip())


def find_route(path: str, api_id: str) -> Route | None:
    """The schema the API applies to ``model=api_id`` on ``path``, if it serves it there."""
    spec = _BY_ANY_NAME.get(api_id)
    if spec is None or api_id != spec.api_id:
        return None
    return next((route for route in spec.routes.values() if route.path == path), None)
