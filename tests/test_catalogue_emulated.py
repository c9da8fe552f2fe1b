"""Every supported model of the catalogue, end to end through the real command and the emulator.

One run holds a valid row per supported model (its smallest resolution, where it has a
choice, and its default duration) and, per model, a row with a wrong value in each of its
enum fields. Each valid row must end with a decodable MP4 of the size and length the
emulator renders for that model; no invalid row may reach a create.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from i2v.api.models import MODELS, ModelSpec, Route
from i2v.emulator.app import DEFAULT_SECONDS
from i2v.media.probe import probe
from tests.emulated import emulator
from tests.runs import cli_env, run

SUPPORTED = [spec for spec in MODELS.values() if spec.supported]
WRONG = "999999"


def _required(route: Route, skip: str = "") -> dict[str, str]:
    """Cells for the fields a model requires and has no default for (``skip`` left out)."""
    cells = {}
    for name, param in route.params.items():
        if param.required and param.default is None and name != skip:
            cells[name] = "a.png" if param.type in ("image", "image_list") else str((param.choices or ("x",))[0])
    return cells


def _smallest(route: Route) -> str | None:
    """The model's smallest resolution choice, as its schema spells it (None: it has none)."""
    param = route.params.get("resolution")
    if param is None or not param.choices:
        return None
    return str(min(param.choices, key=lambda choice: _lines(str(choice))))


def _lines(resolution: str) -> int:
    """The short side a resolution choice stands for, read independently of the emulator."""
    named = {"hd": 720, "fhd": 1080, "2k": 1440, "4k": 2160}
    text = resolution.lower()
    return named.get(text) or int(text.rstrip("p"))


def _expected(route: Route, resolution: str | None) -> tuple[int, int, str | None]:
    """Seconds, short side and aspect ratio the emulator must render for a row asking ``resolution``."""
    duration = route.params.get("duration")
    seconds = int(str(duration.default).rstrip("s")) if duration and duration.default is not None else DEFAULT_SECONDS
    asked = resolution or (route.params["resolution"].default if "resolution" in route.params else None)
    # A model with no resolution to choose renders at the emulator's fallback, 720 lines.
    short = _lines(str(asked)) if asked is not None else 720
    ratio_field = next((name for name in ("aspect_ratio", "ratio") if name in route.params), None)
    ratio = route.params[ratio_field].default if ratio_field else None
    return seconds, short, ratio if isinstance(ratio, str) and ":" in ratio else None


def _grid(folder: Path) -> tuple[Path, dict[str, tuple[ModelSpec, str | None]], dict[str, tuple[ModelSpec, str]]]:
    """The CSV, its valid rows (id -> model, resolution asked) and invalid ones (id -> model, wrong field)."""
    # 16:9, so a model that follows the image's orientation renders 16:9 as well.
    Image.new("RGB", (64, 36), (30, 120, 200)).save(folder / "a.png")
    rows: list[dict[str, str]] = []
    valid: dict[str, tuple[ModelSpec, str | None]] = {}
    invalid: dict[str, tuple[ModelSpec, str]] = {}
    for number, spec in enumerate(SUPPORTED):
        route = spec.route()
        resolution = _smallest(route)
        cells = {"id": f"ok{number}", "model": spec.name, **_required(route)}
        if resolution is not None:
            cells["resolution"] = resolution
        rows.append(cells)
        valid[cells["id"]] = (spec, resolution)
        for name, param in route.params.items():
            if param.choices and param.offered and param.type != "boolean":
                bad = {"id": f"bad{number}-{name}", "model": spec.name, **_required(route, skip=name), name: WRONG}
                rows.append(bad)
                invalid[bad["id"]] = (spec, name)
    columns = ["id", "image_url", "prompt", "model", *sorted({k for r in rows for k in r} - {"id", "model"})]
    path = folder / "models.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, restval="")
        writer.writeheader()
        for cells in rows:
            writer.writerow({"image_url": "a.png", "prompt": "A lighthouse at dusk", **cells})
    return path, valid, invalid


@pytest.fixture(scope="module")
def every_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run of the grid against an emulator rendering at the asked resolution, one frame a second."""
    folder = tmp_path_factory.mktemp("every-model")
    path, valid, invalid = _grid(folder)
    dest = folder / "out"
    with emulator(short_side=None, fps=1, generation_seconds=0.05, max_concurrent=8) as emu:
        env = cli_env(emu.base_url, emu.api_key, folder / "prefect")
        log = folder / "i2v.log"
        args = ["run", str(path), "--dest", str(dest), "--poll-interval", "0.2", "--max-in-flight", "8"]
        status = run(args, env, log, timeout=600)
        (run_dir,) = (dest / "runs").iterdir()
        yield {
            "status": status,
            "log": log,
            "stats": emu.stats(),
            "dest": dest,
            "valid": valid,
            "invalid": invalid,
            "manifest": pd.read_parquet(run_dir / "manifest.parquet").set_index("id"),
        }


def test_every_supported_model_makes_its_video_through_the_emulator(every_model: dict[str, Any]) -> None:
    """Each supported model's row completes with a decodable MP4 of its asked (or default) size and length."""
    manifest: pd.DataFrame = every_model["manifest"]
    dest: Path = every_model["dest"]
    assert every_model["stats"]["creates"] == len(SUPPORTED), "one create per valid row, none for invalid ones"
    wrong = []
    for row_id, (spec, resolution) in every_model["valid"].items():
        row = manifest.loc[row_id]
        if row["status"] != "completed":
            wrong.append((spec.name, row["status"], row["error_message"]))
            continue
        assert row["model"] == spec.api_id
        seconds, short, ratio = _expected(spec.route(), resolution)
        video = probe(dest / row["video_uri"])
        assert video.duration_s == pytest.approx(seconds), spec.name
        assert min(video.width, video.height) == short, spec.name
        if ratio is not None:
            across, down = (float(x) for x in ratio.split(":"))
            assert video.width / video.height == pytest.approx(across / down, rel=0.02), (spec.name, ratio)
        if resolution is not None:
            assert json.loads(row["params"])["resolution"] == resolution, "sent as the model spells it"
    assert wrong == []


def test_a_wrong_enum_value_fails_its_row_before_any_create(every_model: dict[str, Any]) -> None:
    """Every enum field of every supported model: a value outside it fails the row, naming the field, unpaid."""
    manifest: pd.DataFrame = every_model["manifest"]
    assert every_model["status"] == 1, "invalid rows make the run say so"
    assert every_model["stats"]["jobs_total"] == len(SUPPORTED)
    for row_id, (spec, field) in every_model["invalid"].items():
        row = manifest.loc[row_id]
        assert (row["status"], row["error_kind"]) == ("failed", "invalid_input"), (spec.name, field)
        assert field in row["error_message"], (spec.name, field, row["error_message"])
