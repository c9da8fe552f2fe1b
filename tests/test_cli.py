"""The i2v command: one-line errors, the model listing, and the demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from i2v.cli.main import REPO_ROOT, main
from i2v.media.probe import probe


def test_missing_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without AIMLAPI_API_KEY the run stops before starting, with one line and status 2."""
    assert main(["run", str(tmp_path / "rows.csv"), "--dest", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == "i2v: error: AIMLAPI_API_KEY is not set: export your AI/ML API key first\n"


def test_bad_csv_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing file, a missing column or an unknown model is one line naming the problem, no traceback."""
    monkeypatch.setenv("AIMLAPI_API_KEY", "k")
    assert main(["run", str(tmp_path / "nope.csv"), "--dest", "out"]) == 2
    assert capsys.readouterr().err.startswith("i2v: error: input file not found:")
    (tmp_path / "rows.csv").write_text("image,prompt\nx.png,hi\n")
    assert main(["run", str(tmp_path / "rows.csv"), "--dest", "out"]) == 2
    assert "lacks the column(s) image_url" in capsys.readouterr().err
    (tmp_path / "ok.csv").write_text("image_url,prompt\nx.png,hi\n")
    assert main(["run", str(tmp_path / "ok.csv"), "--dest", "out", "--model", "acme/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'acme/x'" in err
    assert err.count("\n") == 1


def test_models_lists_every_model_and_route(capsys: pytest.CaptureFixture[str]) -> None:
    """`i2v models` shows each model, its paths and parameter choices."""
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "alibaba/wan2.6-i2v" in out
    assert "POST /v2/generate/video/alibaba/generation" in out
    assert "duration: integer one of 5, 10, 15, default 10" in out


def test_demo_end_to_end(tmp_path: Path) -> None:
    """`i2v demo` runs the sample against its own emulator: decodable videos, one manifest row per CSV row."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI_", "PREFECT_API"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}
    dest = tmp_path / "demo"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("i2v")), "demo", "--dest", str(dest), "--generation-seconds", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sample = pd.read_csv(REPO_ROOT / "data" / "sample.csv")
    (run,) = (dest / "runs").iterdir()
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert len(manifest) == len(sample) >= 8
    merged = pd.read_parquet(dest / "manifest.parquet")
    assert set(merged["row_key"]) == set(manifest["row_key"].dropna()), "the destination's manifest: valid rows"
    assert (dest / "report.html").stat().st_size > 0
    assert manifest["id"].tolist() == sample["id"].tolist()
    assert set(manifest["status"]) == {"completed", "failed"}
    assert (manifest["error_kind"] == "generation_failed").sum() == 1
    assert (manifest["error_kind"] == "invalid_input").sum() >= 1
    completed = manifest[manifest["status"] == "completed"]
    for uri, seconds in zip(completed["video_uri"], completed["duration_s"], strict=True):
        assert uri.startswith("videos/"), "named relative to the destination"
        assert probe(dest / uri).duration_s == pytest.approx(seconds)
    assert completed["mismatch"].isna().all(), "the demo's emulator renders what was asked"
    lines = [json.loads(line) for line in (dest / "metadata.jsonl").read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(completed["id"]), "one line per completed row"
    assert all((dest / line["file_name"]).is_file() for line in lines)
    assert "rows: " in done.stdout
    assert "manifest:" in done.stdout
