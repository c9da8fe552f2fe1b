"""Rows left to a model's dear defaults: `i2v estimate` warns of them, naming the rows, the price and the way out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2v.api.models import get_model
from i2v.cli.main import main
from i2v.inputs import costly
from tests.runs import write_rows

WAN25 = "alibaba/wan2.5-i2v-preview"
WAN22 = "alibaba/wan2.2-i2v-plus"
WARNING = (
    f"warning: 2 rows leave resolution and duration blank, so {WAN25} uses its defaults 1080p and 10 s: about $1.41"
    " a video, its priciest choice (480p and 5 s: $0.21); give --resolution/--duration (or the resolution and"
    " duration columns) to choose cheaper"
)


def _plain(folder: Path, header: str = "image_url,prompt", cells: str = "") -> Path:
    """Two rows over a local image, with ``header``'s columns and ``cells`` after the prompt."""
    write_rows(folder, 1)
    csv = folder / "plain.csv"
    csv.write_text(f"{header}\na.png,Boats rock{cells}\nb.png,A train crosses{cells}\n")
    return csv


def _estimate(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["estimate", *args]) == 0
    return capsys.readouterr().out


def test_estimate_warns_of_rows_left_to_the_priciest_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows with only image_url and prompt get wan2.5 at 1080p and 10 s: one line names them, the price and the cure."""
    csv = _plain(tmp_path)
    assert WARNING in _estimate(capsys, str(csv)).splitlines()
    document = json.loads(_estimate(capsys, str(csv), "--json"))
    assert document["costly_defaults"] == [
        {
            "model": WAN25,
            "rows": 2,
            "defaults": {"resolution": "1080p", "duration": 10},
            "usd": 1.41,
            "cheapest": {"resolution": "480p", "duration": 5},
            "cheapest_usd": 0.21,
            "priciest": True,
        }
    ]


def test_no_warning_when_the_run_or_the_rows_choose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Given --resolution and --duration, or both columns, nothing is left to the defaults and nothing is said."""
    csv = _plain(tmp_path)
    assert "warning:" not in _estimate(capsys, str(csv), "--resolution", "480p", "--duration", "5")
    chosen = _plain(tmp_path, "image_url,prompt,resolution,duration", ",720p,5")
    assert "warning:" not in _estimate(capsys, str(chosen))
    assert json.loads(_estimate(capsys, str(chosen), "--json"))["costly_defaults"] == []


def test_only_the_field_left_blank_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --resolution given, the duration alone falls back: 10 s against 5 s at the chosen resolution."""
    out = _estimate(capsys, str(_plain(tmp_path)), "--resolution", "480p")
    (line,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "2 rows leave duration blank, so alibaba/wan2.5-i2v-preview uses its default 10 s:" in line
    assert "(5 s: $0.21); give --duration (or the duration column)" in line


def test_a_comparison_warns_per_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each compared model's own defaults are judged: wan2.2 (no duration field) is named for its 1080P."""
    document = json.loads(_estimate(capsys, str(_plain(tmp_path)), "--models", f"{WAN25},{WAN22}", "--json"))
    found = {(item["model"], tuple(item["defaults"]), item["rows"]) for item in document["costly_defaults"]}
    assert found == {(WAN25, ("resolution", "duration"), 2), (WAN22, ("resolution",), 2)}


def test_a_default_that_is_the_cheapest_is_not_warned_of() -> None:
    """A field left to a default that costs no more than any other choice says nothing; a dearer one is named."""
    spec = get_model(WAN25)
    route = spec.route()
    assert costly.costly_defaults([(spec, route, {"resolution": "480p", "duration": 5}, ("duration",))]) == []
    (found,) = costly.costly_defaults([(spec, route, {"resolution": "480p", "duration": 10}, ("duration",))] * 3)
    assert (found.rows, dict(found.defaults), dict(found.cheapest), found.priciest) == (
        3,
        {"duration": 10},
        {"duration": 5},
        True,
    )
