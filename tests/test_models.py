"""The model registry against the vendor's OpenAPI files, so that drift shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from i2v.api.models import (
    COMPLETED_STATUS,
    DEFAULT_MODEL,
    ERROR_STATUS,
    LEGACY_PATH,
    MODELS,
    RUNNING_STATUSES,
    UNIVERSAL_PATH,
    find_route,
    get_model,
)
from tests.vendor import shared_dir

_ALWAYS = {"model", "prompt", "image_url"}


def _vendor_files() -> list[Path]:
    return sorted((shared_dir() / "aimlapi").glob("*.json"))


def _create_schemas() -> list[tuple[str, str, dict[str, Any]]]:
    """(file, path, request schema) for every image-to-video create operation."""
    found = []
    for file in _vendor_files():
        spec = json.loads(file.read_text())
        for path, operations in spec["paths"].items():
            post = operations.get("post")
            if not post:
                continue
            schema = post["requestBody"]["content"]["application/json"]["schema"]
            if "image_url" in schema["properties"]:
                found.append((file.name, path, schema))
    return found


def _normalise_default(kind: str, value: Any) -> Any:
    # The vendor writes integer defaults as strings ("10"); compare values, not spelling.
    if kind == "integer" and isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def test_vendor_files_are_present() -> None:
    """The reference files this test relies on exist: drift checks must not silently vanish."""
    names = {f.name for f in _vendor_files()}
    assert {"wan2.5-i2v-preview.json", "wan2.2-i2v-plus.json", "wan2.6-i2v.json"} <= names
    assert len(_create_schemas()) >= 4


@pytest.mark.parametrize(("file", "path", "schema"), _create_schemas(), ids=lambda v: v if isinstance(v, str) else "")
def test_registry_matches_vendor_schema(file: str, path: str, schema: dict[str, Any]) -> None:
    """Every vendor image-to-video schema has a registry route with the same fields, types, enums and defaults."""
    (api_id,) = schema["properties"]["model"]["enum"]
    route = find_route(path, api_id)
    assert route is not None, f"{file}: {api_id} on {path} is missing from the registry"

    vendor_params = {name: prop for name, prop in schema["properties"].items() if name not in _ALWAYS}
    assert set(route.params) == set(vendor_params), f"{file}: parameters differ"
    for name, prop in vendor_params.items():
        param = route.params[name]
        kind = "uri" if prop.get("format") == "uri" else prop.get("type", "string")
        assert param.type == kind, f"{file}: {name} type"
        assert list(param.choices or []) == list(prop.get("enum") or []), f"{file}: {name} enum"
        assert param.default == _normalise_default(kind, prop.get("default")), f"{file}: {name} default"

    required = set(schema.get("required", []))
    assert ("image_url" in required) == route.requires_image
    prompt = schema["properties"]["prompt"]
    if "maxLength" in prompt:
        assert route.prompt_max == prompt["maxLength"]
        assert route.prompt_min == prompt.get("minLength", 0)


def test_fetch_statuses_are_all_understood() -> None:
    """Every status the vendor's fetch schemas list is one the poller classifies."""
    known = RUNNING_STATUSES | {COMPLETED_STATUS, ERROR_STATUS}
    for file in _vendor_files():
        text = json.loads(file.read_text())
        for status_enum in _find_status_enums(text):
            assert set(status_enum) <= known, f"{file.name}: {status_enum}"


def _find_status_enums(node: Any) -> list[list[str]]:
    found: list[list[str]] = []
    if isinstance(node, dict):
        status = node.get("properties", {}).get("status") if isinstance(node.get("properties"), dict) else None
        if isinstance(status, dict) and "enum" in status:
            found.append(status["enum"])
        for value in node.values():
            found.extend(_find_status_enums(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_find_status_enums(value))
    return found


def test_required_models_are_registered() -> None:
    """The three Wan image-to-video models are known, with wan2.5 preview the default."""
    assert DEFAULT_MODEL == "alibaba/wan2.5-i2v-preview"
    assert {"alibaba/wan2.5-i2v-preview", "alibaba/wan2.2-i2v-plus", "alibaba/wan2.6-i2v"} <= set(MODELS)


def test_model_lookup_accepts_api_ids_and_names() -> None:
    """wan2.6 is sent as the API's own id, whichever name the user wrote."""
    assert get_model("alibaba/wan2.6-i2v").api_id == "alibaba/wan-2-6-i2v"
    assert get_model("alibaba/wan-2-6-i2v").name == "alibaba/wan2.6-i2v"
    with pytest.raises(KeyError, match="unknown model 'alibaba/nope'"):
        get_model("alibaba/nope")


def test_routes_use_the_documented_paths() -> None:
    """Legacy routes live on the vendor path, universal ones on /v2/video/generations."""
    spec = get_model(DEFAULT_MODEL)
    assert spec.route("legacy").path == LEGACY_PATH
    assert spec.route("universal").path == UNIVERSAL_PATH
    assert spec.route("legacy").expansion_field == "enable_prompt_expansion"
    assert spec.route("universal").expansion_field == "enhance_prompt"
    with pytest.raises(KeyError, match="not served on the legacy path"):
        get_model("alibaba/wan2.6-i2v").route("legacy")
