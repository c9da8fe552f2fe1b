"""The model registry: which models exist, where their endpoints live, what they accept.

Each model is served on one or more *routes*: the current universal path
(``/v2/video/generations``) and, for older models, the legacy vendor path
(``/v2/generate/video/alibaba/generation``). A route has its own request schema: the
same model spells prompt expansion ``enhance_prompt`` on one and
``enable_prompt_expansion`` on the other, and only the universal schema has
``aspect_ratio``.

The registry is written here, in the project's own words; ``tests/test_models.py``
compares it with the vendor's OpenAPI files so that drift shows up as a failing test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

UNIVERSAL_PATH = "/v2/video/generations"
LEGACY_PATH = "/v2/generate/video/alibaba/generation"

RouteName = Literal["universal", "legacy"]
ROUTE_PATHS: Mapping[RouteName, str] = {"universal": UNIVERSAL_PATH, "legacy": LEGACY_PATH}

ParamType = Literal["string", "integer", "boolean", "uri"]

#: Statuses after which a job is still running. The vendor's schema lists ``queued`` and
#: ``generating``; its own sample client also waits on ``waiting`` and ``active``, and its
#: Python SDK on ``processing``.
RUNNING_STATUSES = frozenset({"queued", "generating", "waiting", "active", "processing"})
COMPLETED_STATUS = "completed"
ERROR_STATUS = "error"
#: Statuses that clearly end a job without a video: ``error`` is the documented one; the
#: others are words any job API may use for the same end. Any other unknown status is
#: not success either, but it is polled until the job's deadline.
FAILED_STATUSES = frozenset({ERROR_STATUS, "failed", "cancelled", "canceled", "expired", "rejected"})

#: The user-facing name of prompt expansion; routes may spell it differently.
EXPANSION_ALIASES = ("enhance_prompt", "enable_prompt_expansion")


@dataclass(frozen=True)
class Param:
    """One optional request field of a route."""

    type: ParamType
    choices: tuple[str | int, ...] | None = None
    default: str | int | bool | None = None
    description: str = ""


@dataclass(frozen=True)
class Route:
    """A model's request schema on one endpoint."""

    name: RouteName
    params: Mapping[str, Param]
    prompt_min: int = 1
    prompt_max: int = 800
    requires_image: bool = True
    #: Legacy endpoints convert numeric strings (the vendor's own sample sends
    #: ``"duration": "5"``); the universal schema is strict.
    coerces_numbers: bool = False

    @property
    def path(self) -> str:
        return ROUTE_PATHS[self.name]

    @property
    def expansion_field(self) -> str | None:
        return next((name for name in EXPANSION_ALIASES if name in self.params), None)


@dataclass(frozen=True)
class ModelSpec:
    """A model users can ask for by ``name``; ``api_id`` is what the API expects."""

    name: str
    api_id: str
    routes: Mapping[RouteName, Route]
    default_route: RouteName
    aliases: tuple[str, ...] = ()
    summary: str = ""
    notes: tuple[str, ...] = field(default=())

    def route(self, name: RouteName | None = None) -> Route:
        chosen = name or self.default_route
        try:
            return self.routes[chosen]
        except KeyError:
            offered = ", ".join(sorted(self.routes))
            raise KeyError(f"{self.name} is not served on the {chosen} path (only: {offered})") from None


_RESOLUTION = "An enumeration where the short side of the video frame determines the resolution."
_NEGATIVE = Param("string", description="Elements to avoid in the video.")
_SEED = Param("integer", description="Same seed and inputs give similar results.")
_EXPAND = Param("boolean", default=True, description="Whether to enable prompt expansion.")


def _wan25_universal() -> Route:
    return Route(
        "universal",
        {
            "resolution": Param("string", ("480p", "720p", "1080p"), "1080p", _RESOLUTION),
            "aspect_ratio": Param("string", ("16:9", "9:16", "1:1"), "16:9"),
            "duration": Param("integer", (5, 10), 10, "Length of the video in seconds."),
            "negative_prompt": _NEGATIVE,
            "seed": _SEED,
            "enhance_prompt": _EXPAND,
        },
    )


def _wan25_legacy() -> Route:
    return Route(
        "legacy",
        {
            "resolution": Param("string", ("480p", "720p", "1080p"), "720p", _RESOLUTION),
            # No documented default: left out of the request unless asked for.
            "duration": Param("integer", (5, 10), None, "Length of the video in seconds."),
            "negative_prompt": _NEGATIVE,
            "enable_prompt_expansion": _EXPAND,
            "seed": _SEED,
        },
        coerces_numbers=True,
    )


def _wan22_universal() -> Route:
    return Route(
        "universal",
        {
            "resolution": Param("string", ("480P", "1080P"), "1080P", _RESOLUTION),
            "negative_prompt": _NEGATIVE,
            "watermark": Param("boolean", default=False, description="Add a watermark."),
            "seed": _SEED,
            "enhance_prompt": _EXPAND,
        },
    )


def _wan22_legacy() -> Route:
    # The vendor's documentation page sends this model to the legacy path with
    # ``"duration": "5"``; its videos are five seconds long.
    return Route(
        "legacy",
        {
            "resolution": Param("string", ("480P", "1080P"), "1080P", _RESOLUTION),
            "duration": Param("integer", (5,), 5, "Length of the video in seconds."),
            "negative_prompt": _NEGATIVE,
            "enable_prompt_expansion": _EXPAND,
            "seed": _SEED,
        },
        coerces_numbers=True,
    )


def _wan26_universal() -> Route:
    return Route(
        "universal",
        {
            "audio_url": Param("uri", description="Audio the video is generated to."),
            "resolution": Param("string", ("720p", "1080p"), "1080p", _RESOLUTION),
            "duration": Param("integer", (5, 10, 15), 10, "Length of the video in seconds."),
            "negative_prompt": _NEGATIVE,
            "shot_type": Param("string", ("single", "multi"), "single"),
            "generate_audio": Param("boolean", default=True),
            "seed": _SEED,
            "enhance_prompt": _EXPAND,
        },
    )


DEFAULT_MODEL = "alibaba/wan2.5-i2v-preview"

MODELS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="alibaba/wan2.5-i2v-preview",
            api_id="alibaba/wan2.5-i2v-preview",
            routes={"universal": _wan25_universal(), "legacy": _wan25_legacy()},
            default_route="universal",
            summary="Wan 2.5 preview: 480p-1080p, 5 or 10 s, three aspect ratios.",
        ),
        ModelSpec(
            name="alibaba/wan2.2-i2v-plus",
            api_id="alibaba/wan2.2-i2v-plus",
            routes={"universal": _wan22_universal(), "legacy": _wan22_legacy()},
            default_route="universal",
            summary="Wan 2.2 plus: 480P or 1080P, fixed 5 s; resolutions are upper-case.",
        ),
        ModelSpec(
            name="alibaba/wan2.6-i2v",
            api_id="alibaba/wan-2-6-i2v",
            aliases=("alibaba/wan-2-6-i2v",),
            routes={"universal": _wan26_universal()},
            default_route="universal",
            summary="Wan 2.6: 720p or 1080p, 5/10/15 s, optional audio track.",
            notes=("The API names this model 'alibaba/wan-2-6-i2v'.",),
        ),
    )
}

_BY_ANY_NAME: Mapping[str, ModelSpec] = {
    name: spec for spec in MODELS.values() for name in (spec.name, spec.api_id, *spec.aliases)
}


def get_model(name: str) -> ModelSpec:
    """Look a model up by its name, API id or alias; ``KeyError`` names the known ones."""
    try:
        return _BY_ANY_NAME[name.strip()]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise KeyError(f"unknown model {name!r} (known: {known})") from None


def find_route(path: str, api_id: str) -> Route | None:
    """The schema the API applies to ``model=api_id`` on ``path``, if it serves it there."""
    spec = _BY_ANY_NAME.get(api_id)
    if spec is None or api_id != spec.api_id:
        return None
    return next((route for route in spec.routes.values() if route.path == path), None)
