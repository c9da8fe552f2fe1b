"""The model catalogue against the vendor's OpenAPI files, so that drift shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from i2v.api.catalogue import build
from i2v.api.models import (
    COMPLETED_STATUS,
    DEFAULT_MODEL,
    ERROR_STATUS,
    LEGACY_PATH,
    MODELS,
    RUNNING_STATUSES,
    UNIVERSAL_PATH,
    get_model,
    lookup,
)
from tests.vendor import shared_dir

VENDOR_API = shared_dir() / "aimlapi" / "vendor-docs" / "api-references"
LEGACY_FILES = [shared_dir() / "aimlapi" / "wan2.5-i2v-preview.legacy-endpoint.json"]


def _vendor_files() -> list[Path]:
    files = sorted((shared_dir() / "aimlapi").glob("*.json")) + sorted(VENDOR_API.glob("video-models/**/*.json"))
    return [file for file in files if file.read_text().strip()]  # two vendor files are empty


def _image_schemas() -> list[tuple[str, str]]:
    """(file, model id) for every create operation in the vendor's files that takes an image."""
    found = []
    for file in sorted(VENDOR_API.glob("video-models/**/*.json")):
        text = file.read_text().strip()
        if not text:
            continue
        for operations in json.loads(text)["paths"].values():
            post = operations.get("post")
            if not post:
                continue
            properties = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
            if any("image" in name for name in properties):
                for model_id in properties["model"].get("enum", []):
                    found.append((file.relative_to(VENDOR_API).as_posix(), model_id))
    return found


def test_shipped_catalogue_matches_the_vendor_files() -> None:
    """Regenerating the catalogue from the vendor's files gives the shipped file byte for byte (no drift)."""
    fresh = build.render(build.build(VENDOR_API, LEGACY_FILES))
    shipped = build.OUT.read_text(encoding="utf-8")
    assert fresh == shipped, "the vendor's files changed: run `make models` and review the diff"


def test_every_vendor_image_to_video_model_is_catalogued() -> None:
    """Each model id a vendor image schema names is in the catalogue, supported or with its reason."""
    schemas = _image_schemas()
    assert len(schemas) >= 60
    for file, model_id in schemas:
        spec = lookup(model_id)
        assert spec is not None, f"{file}: {model_id} is missing from the catalogue"
        assert spec.supported or spec.unsupported, model_id


def test_unsupported_models_say_why() -> None:
    """Models needing a video or audio input are listed with the reason, never dropped."""
    assert get_model("bytedance/omnihuman").unsupported == (
        "needs audio_url (an audio track), which the pipeline's rows do not carry"
    )
    assert "video_url (a video)" in (get_model("alibaba/wan2.2-14b-animate-move").unsupported or "")
    supported = [spec for spec in MODELS.values() if spec.supported]
    assert len(supported) >= 60
    assert all(spec.route().requires_image or spec.route().image_field for spec in supported)


def test_the_wan_routes_come_from_the_vendor_schemas() -> None:
    """wan2.5 keeps both paths with their own spellings; wan2.2 upper-cases its resolutions."""
    wan25 = get_model(DEFAULT_MODEL)
    universal, legacy = wan25.route("universal"), wan25.route("legacy")
    assert (universal.path, legacy.path) == (UNIVERSAL_PATH, LEGACY_PATH)
    assert universal.params["resolution"].default == "1080p"
    duration = universal.params["duration"]
    assert (duration.type, duration.choices, duration.default) == ("integer", (5, 10), 10)
    assert "enhance_prompt" in universal.params
    assert "enable_prompt_expansion" in legacy.params
    assert legacy.coerces_numbers
    assert not universal.coerces_numbers
    assert get_model("alibaba/wan2.2-i2v-plus").route().params["resolution"].choices == ("480P", "1080P")
    # Numbers the schema wants as strings are marked so.
    runway = get_model("runway-gen3/turbo/image-to-video").route().params["duration"]
    assert (runway.type, runway.default, runway.numeric_strings) == ("string", "5", True)


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
    assert all(lookup(name) for name in ("alibaba/wan2.5-i2v-preview", "alibaba/wan2.2-i2v-plus", "alibaba/wan2.6-i2v"))


def test_model_lookup_accepts_api_ids_and_names() -> None:
    """wan2.6 is sent (and named) by the API's own id, whichever name the user wrote."""
    assert get_model("alibaba/wan2.6-i2v").api_id == "alibaba/wan-2-6-i2v"
    assert get_model("alibaba/wan-2-6-i2v").name == "alibaba/wan-2-6-i2v"
    with pytest.raises(KeyError, match=r"unknown model 'alibaba/nope'.*i2v models"):
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
