"""Rows for every catalogued model: valid rows build the model's own body, wrong values fail before any create."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from i2v.api.models import MODELS, ModelSpec
from i2v.inputs.validation import read_rows

SUPPORTED = [spec for spec in MODELS.values() if spec.supported]
ENUM_FIELDS = [
    (spec, name)
    for spec in SUPPORTED
    for name, param in spec.route().params.items()
    if param.choices and param.offered and param.type != "boolean"
]


def _rows(folder: Path, cells: dict[str, str]) -> Path:
    Image.new("RGB", (32, 18), (200, 40, 40)).save(folder / "a.png")
    path = folder / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(cells))
        writer.writeheader()
        writer.writerow(cells)
    return path


@pytest.mark.parametrize("spec", SUPPORTED, ids=lambda spec: spec.name)
def test_a_plain_row_builds_the_models_own_body(tmp_path: Path, spec: ModelSpec) -> None:
    """Image and prompt alone make a valid row for each supported model, its image in the model's image field."""
    route = spec.route()
    cells = {"image_url": "a.png", "prompt": "A lighthouse at dusk", "model": spec.name}
    for name, param in route.params.items():
        if param.required and param.default is None:
            cells[name] = "a.png" if param.type in ("image", "image_list") else str((param.choices or ("x",))[0])
    result = read_rows(_rows(tmp_path, cells))
    assert result.invalid == [], result.invalid[0].message if result.invalid else ""
    (row,) = result.rows
    body = row.request_body()
    image = body[route.image_field]
    assert (image[0] if route.image_is_list else image).startswith("data:image/png;base64,")
    assert body["model"] == spec.api_id
    assert ("prompt" in body) == route.takes_prompt


@pytest.mark.parametrize(("spec", "field"), ENUM_FIELDS, ids=lambda v: v if isinstance(v, str) else v.name)
def test_a_value_outside_an_enum_fails_the_row_naming_field_choices_and_model(
    tmp_path: Path, spec: ModelSpec, field: str
) -> None:
    """Each enum field of each supported model refuses a value outside its choices, before anything is sent."""
    param = spec.route().params[field]
    cells = {"image_url": "a.png", "prompt": "A lighthouse at dusk", "model": spec.name, field: "999999"}
    for name, other in spec.route().params.items():
        if other.required and other.default is None and name != field:
            cells[name] = "a.png" if other.type in ("image", "image_list") else str((other.choices or ("x",))[0])
    result = read_rows(_rows(tmp_path, cells))
    assert result.rows == []
    (bad,) = result.invalid
    assert bad.field == field
    assert f"must be one of {', '.join(map(str, param.choices or ()))}" in bad.reason
    assert spec.name in bad.reason


def test_further_image_fields_take_local_files_and_numbers_go_as_the_schema_spells_them(tmp_path: Path) -> None:
    """last_image_url takes a local file (sent inline); runway's duration column 10 is sent as the string "10"."""
    veo = _rows(
        tmp_path,
        {
            "image_url": "a.png",
            "prompt": "p",
            "model": "google/veo-3.1-first-last-image-to-video",
            "last_image_url": "a.png",
        },
    )
    (row,) = read_rows(veo).rows
    assert row.request_body()["last_image_url"].startswith("data:image/png;base64,")
    runway = _rows(
        tmp_path, {"image_url": "a.png", "prompt": "p", "model": "runway-gen3/turbo/image-to-video", "duration": "10"}
    )
    (row,) = read_rows(runway).rows
    assert row.request_body()["duration"] == "10"


def test_an_unsupported_model_fails_the_row_with_the_reason(tmp_path: Path) -> None:
    """A model needing an audio track fails its row, saying so, rather than being sent."""
    result = read_rows(_rows(tmp_path, {"image_url": "a.png", "prompt": "p", "model": "bytedance/omnihuman"}))
    (bad,) = result.invalid
    assert bad.field == "model"
    assert "needs audio_url (an audio track)" in bad.reason
