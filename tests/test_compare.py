"""Model comparisons: every row on each of ``--models``, through the real command against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Page

from i2v.api import prices
from i2v.cli.main import main
from i2v.demo import SAMPLE_CSV
from i2v.inputs.validation import read_rows
from i2v.media.probe import probe
from i2v.report.comparison import render_comparison
from i2v.report.links import relative_href
from tests.emulated import Emulator, emulator
from tests.runs import cli_env, run, write_rows
from tests.test_report_page import Seen, browser, page  # noqa: F401 - the browser fixtures

MODELS = ("alibaba/wan2.5-i2v-preview", "alibaba/wan2.2-i2v-plus", "alibaba/wan-2-6-i2v")
SAMPLE = SAMPLE_CSV


def _grid_csv(folder: Path) -> Path:
    """Three rows every compared model can do (1080p is the one resolution all three offer); one has no id."""
    write_rows(folder, 1)
    csv = folder / "grid.csv"
    csv.write_text(
        "id,image_url,prompt,resolution,duration\n"
        "harbour,a.png,Boats rock in the harbour,1080p,5\n"
        "bridge,b.png,A train crosses a bridge,1080p,5\n"
        ",a.png,Gulls circle over the pier,1080p,5\n"
    )
    return csv


def _run_manifest(dest: Path, before: set[str]) -> tuple[str, pd.DataFrame]:
    """The run that appeared in ``dest`` since ``before``, and its manifest."""
    (name,) = {path.name for path in (dest / "runs").iterdir()} - before
    return name, pd.read_parquet(dest / "runs" / name / "manifest.parquet")


def _runs(dest: Path) -> set[str]:
    return {path.name for path in (dest / "runs").iterdir()} if (dest / "runs").exists() else set()


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the module's runs (its database is migrated once)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, prefect_home: Path) -> Iterator[dict[str, Any]]:
    """A first comparison run of three rows on three models; the first pair's video URL answers 404 three times."""
    folder = tmp_path_factory.mktemp("grid")
    csv = _grid_csv(folder)
    dest = folder / "out"
    with emulator() as emu:
        env = cli_env(emu.base_url, emu.api_key, prefect_home)
        # One pair at a time, so the fault lands on the first pair's download only.
        emu.fault("download", 404, count=3)
        args = ["run", str(csv), "--dest", str(dest), "--models", ",".join(MODELS), "--poll-interval", "0.2"]
        log = folder / "i2v.log"
        status = run([*args, "--max-in-flight", "1"], env, log)
        name, manifest = _run_manifest(dest, set())
        yield {
            "emu": emu,
            "env": env,
            "csv": csv,
            "dest": dest,
            "args": args,
            "log": log,
            "status": status,
            "run": name,
            "manifest": manifest,
        }


def test_a_comparison_makes_one_job_video_and_manifest_row_per_row_and_model(grid: dict[str, Any]) -> None:
    """3 rows x 3 models: nine jobs, nine manifest rows keyed apart, a video of each pair's own, the model on each."""
    manifest: pd.DataFrame = grid["manifest"]
    emu: Emulator = grid["emu"]
    dest: Path = grid["dest"]
    assert grid["status"] == 1, "one pair failed, so the run says so"
    assert emu.created() == 9
    assert len(manifest) == 9
    assert sorted(zip(manifest["row_index"], manifest["model"], strict=True)) == sorted(
        (index, model) for index in range(3) for model in MODELS
    )
    assert manifest["row_key"].nunique() == 9, "each pair is its own work"
    assert manifest[manifest["row_index"] == 0]["id"].tolist() == [f"harbour--{m.replace('/', '_')}" for m in MODELS]
    assert (manifest[manifest["row_index"] == 2]["id"] == manifest[manifest["row_index"] == 2]["row_key"]).all()
    (failed,) = manifest[manifest["status"] == "failed"].itertuples()
    assert failed.error_kind == "download"
    assert failed.retryable
    completed = manifest[manifest["status"] == "completed"]
    assert len(completed) == 8
    assert completed["video_uri"].nunique() == 8
    for uri, seconds in zip(completed["video_uri"], completed["duration_s"], strict=True):
        assert probe(dest / uri).duration_s == pytest.approx(seconds)
    by_model = completed.groupby("model")["params"].first().map(json.loads)
    assert by_model["alibaba/wan2.2-i2v-plus"].get("duration") is None, (
        "a setting the model has no field for is not sent"
    )
    lines = [json.loads(line) for line in (dest / "metadata.jsonl").read_text().splitlines()]
    assert sorted((line["model"], line["input_image"]) for line in lines) == sorted(
        zip(completed["model"], completed["image_url"], strict=True)
    )
    assert all(line["input_image"].startswith("inputs/") for line in lines)
    assert "models side by side:" in grid["log"].read_text()


def test_a_comparison_is_counted_as_rows_times_models_and_linked_from_the_destination(grid: dict[str, Any]) -> None:
    """The run's summary says "3 rows × 3 models"; the destination's report.html links to the run's compare.html."""
    dest: Path = grid["dest"]
    assert "3 rows × 3 models: 8 completed, 0 skipped, 1 failed" in grid["log"].read_text()
    root = (dest / "report.html").read_text()
    assert f'class="compare" href="runs/{grid["run"]}/compare.html"' in root
    assert (dest / "runs" / grid["run"] / "compare.html").exists()


def test_models_column_runs_each_row_on_its_own_models(prefect_home: Path, tmp_path: Path) -> None:
    """A `models` cell runs its row on each model named, a blank one on one; a costly default is warned of first."""
    write_rows(tmp_path, 1)
    csv = tmp_path / "own.csv"
    csv.write_text(
        "id,image_url,prompt,resolution,duration,models\n"
        f'harbour,a.png,Boats rock in the harbour,1080p,5,"{MODELS[0]},{MODELS[1]}"\n'
        "bridge,b.png,A train crosses a bridge,,,\n"
        f'pier,a.png,Gulls circle over the pier,1080p,5,"{",".join(MODELS)}"\n'
        f'kite,b.png,A kite over the dunes,1080p,5,"acme/none,{MODELS[1]}"\n'
    )
    dest = tmp_path / "out"
    log = tmp_path / "i2v.log"
    with emulator() as emu:
        env = cli_env(emu.base_url, emu.api_key, prefect_home)
        assert run(["run", str(csv), "--dest", str(dest), "--poll-interval", "0.2"], env, log) == 1
        created = emu.created()
    name, manifest = _run_manifest(dest, set())
    assert created == 6, "2 + 1 + 3 pairs; the row naming an unknown model sends nothing"
    assert len(manifest) == 7, "one outcome per (row, model), and one for the row that fails"
    pairs = sorted(zip(manifest["row_index"], manifest["model"].fillna("-"), strict=True))
    assert pairs == sorted(
        [(0, MODELS[0]), (0, MODELS[1]), (1, MODELS[0]), (2, MODELS[0]), (2, MODELS[1]), (2, MODELS[2]), (3, "-")]
    )
    assert set(manifest[manifest["row_index"] != 3]["status"]) == {"completed"}
    (bad,) = manifest[manifest["row_index"] == 3].itertuples()
    assert (bad.status, bad.error_kind) == ("failed", "invalid_input")
    assert "unknown model 'acme/none'" in str(bad.error_message)
    assert manifest[manifest["row_index"] == 0]["id"].tolist() == [
        f"harbour--{m.replace('/', '_')}" for m in MODELS[:2]
    ]
    assert manifest[manifest["row_index"] == 1]["id"].tolist() == ["bridge"], "a blank cell: one model, its own id"
    text = log.read_text()
    assert text.splitlines()[0] == (
        f"i2v: warning: 1 row leaves resolution and duration blank, so {MODELS[0]} uses its defaults 1080p and 10 s:"
        f" about $1.41 a video, its priciest choice (480p and 5 s: $0.21); give --resolution/--duration"
        " (or the resolution and duration columns) to choose cheaper"
    ), "said before the run starts"
    assert "4 rows, 7 (row, model) pairs: 6 completed, 0 skipped, 1 failed" in text
    assert f"models side by side: {dest / 'runs' / name / 'compare.html'}" in text
    compare = (dest / "runs" / name / "compare.html").read_text()
    assert [f'<th data-model="{model}">' in compare for model in MODELS] == [True] * 3
    assert f'href="runs/{name}/compare.html"' in (dest / "report.html").read_text()


def test_estimate_counts_rows_and_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`i2v estimate` says "3 rows × 3 models" for `--models`, and counts pairs when `models` cells differ."""
    csv = _grid_csv(tmp_path)
    assert main(["estimate", str(csv), "--models", ",".join(MODELS)]) == 0
    assert f"{csv}: 3 rows × 3 models, 9 jobs" in capsys.readouterr().out
    own = tmp_path / "own.csv"
    own.write_text(
        "image_url,prompt,resolution,duration,models\n"
        f'a.png,Boats,1080p,5,"{MODELS[0]},{MODELS[1]}"\n'
        "a.png,Train,1080p,5,\n"
        f'a.png,Gulls,1080p,5,"{",".join(MODELS)}"\n'
    )
    assert main(["estimate", str(own), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["input_rows"], document["rows"], document["jobs"]) == (3, 6, 6)
    assert document["models"] == list(MODELS)
    assert main(["estimate", str(own)]) == 0
    assert f"{own}: 3 rows, 6 (row, model) pairs, 6 jobs" in capsys.readouterr().out


def test_reruns_treat_each_pair_on_its_own(grid: dict[str, Any]) -> None:
    """A rerun of the failed pair reruns only it, unpaid; the comparison again pays nothing; nor does one model."""
    emu: Emulator = grid["emu"]
    dest: Path = grid["dest"]
    env, log = grid["env"], grid["log"]
    before = _runs(dest)
    assert run(["rerun", str(dest / "manifest.parquet"), "--poll-interval", "0.2"], env, log) == 0
    _, rerun = _run_manifest(dest, before)
    failed = grid["manifest"][grid["manifest"]["status"] == "failed"]
    assert rerun["row_key"].tolist() == failed["row_key"].tolist(), "only the failed pair"
    assert rerun["status"].tolist() == ["completed"]
    assert rerun["id"].tolist() == failed["id"].tolist(), "under the pair's own name"
    assert emu.created() == 9, "its job's video collected through the journal, not paid again"

    before = _runs(dest)
    assert run(grid["args"], env, log) == 0, log.read_text()[-3000:]
    _, again = _run_manifest(dest, before)
    assert len(again) == 9
    assert set(again["error_kind"]) == {"already_done"}
    assert emu.created() == 9, "a re-run pays nothing"

    before = _runs(dest)
    single = ["run", str(grid["csv"]), "--dest", str(dest), "--model", MODELS[0], "--poll-interval", "0.2"]
    assert run(single, env, log) == 0, log.read_text()[-3000:]
    _, alone = _run_manifest(dest, before)
    assert len(alone) == 3
    assert set(alone["error_kind"]) == {"already_done"}, "a one-model run keeps the same keys"
    assert alone["id"].tolist()[:2] == ["harbour", "bridge"], "and its ids as written"
    assert emu.created() == 9
    merged = pd.read_parquet(dest / "manifest.parquet")
    assert len(merged) == 9, "the merged manifest: one row per pair"
    assert set(merged["status"]) == {"completed"}


def test_estimate_prices_the_whole_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`i2v estimate --models` counts a job per (row, model) and its total is the sum of each model's own estimate."""
    csv = tmp_path / "grid.csv"
    # No duration: each model then asks for its own default, and each model alone takes every row.
    csv.write_text(
        "image_url,prompt,resolution\n" + "".join(f"https://example.com/{i}.png,Scene {i},1080p\n" for i in range(3))
    )
    assert main(["estimate", "--no-network", str(csv), "--models", ",".join(MODELS), "--json"]) == 0
    grid = json.loads(capsys.readouterr().out)
    alone = []
    for model in MODELS:
        assert main(["estimate", "--no-network", str(csv), "--model", model, "--json"]) == 0
        alone.append(json.loads(capsys.readouterr().out))
    assert grid["rows"] == 9
    assert grid["jobs"] == 9
    assert grid["credits"] == pytest.approx(sum(each["credits"] for each in alone))
    rows = read_rows(csv, models=MODELS)
    assert grid["credits"] == pytest.approx(sum(prices.estimate(row.model, row.params).credits for row in rows.rows))
    assert {line["model"] for line in grid["lines"]} == set(MODELS)


def test_comparison_of_the_sample_fails_pairs_not_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """On the demo sample a value a model does not offer fails that pair only, naming field, values and model."""
    assert main(["validate", str(SAMPLE), "--models", ",".join(MODELS), "--no-network", "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    sample = pd.read_csv(SAMPLE)
    assert found["rows"] == 3 * len(sample)
    problems = {(p["row"], p["field"], p["problem"]) for p in found["problems"]}
    assert (0, "resolution", "must be one of 720p, 1080p, got '480p' (alibaba/wan-2-6-i2v)") in problems
    rows = read_rows(SAMPLE, models=MODELS)
    assert {(row.index, row.model) for row in rows.rows} >= {(0, MODELS[0]), (0, MODELS[1])}, "its other pairs go on"
    balloons = [bad for bad in rows.invalid if bad.index == 5]
    assert [bad.model for bad in balloons] == list(MODELS)
    assert all(bad.field == "model" for bad in balloons)


def test_unknown_compared_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--models` naming a model the registry lacks stops the run before it starts, naming it."""
    monkeypatch.setenv("AIMLAPI_API_KEY", "k")
    csv = _grid_csv(tmp_path)
    assert main(["run", str(csv), "--dest", str(tmp_path / "out"), "--models", f"{MODELS[0]},acme/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'acme/x'" in err
    assert err.count("\n") == 1


def test_comparison_page_escapes_rows_and_shows_the_kept_image() -> None:
    """Row text stays text, unsafe links are dropped, and a row's image comes from a pair that names the kept copy."""
    evil = '<script>window.__pwned=1</script>"'
    rows = [
        {"row_index": 0, "model": MODELS[0], "row_key": None, "image_url": "images/a.png", "prompt": evil,
         "status": "failed", "error_message": "<b>bad</b>"},
        {"row_index": 0, "model": MODELS[1], "row_key": "k1", "image_url": "inputs/abc.png", "prompt": evil,
         "status": "completed", "video_uri": "javascript:alert(1)"},
        {"row_index": 1, "model": MODELS[1], "row_key": "k2", "image_url": "inputs/def.png", "prompt": "p",
         "status": "completed", "video_uri": "videos/x.mp4", "width": 854, "height": 480, "duration_s": 5.0,
         "credits_used": 131250.0, "generation_seconds": float("nan")},
    ]  # fmt: skip
    html = "".join(
        render_comparison("r<1>", MODELS[:2], rows, href=relative_href("/d", report_key="runs/r/compare.html"))
    )
    assert "<script" not in html
    assert evil not in html
    assert "&lt;b&gt;bad&lt;/b&gt;" in html
    assert "javascript:" not in html
    assert html.count('src="../../inputs/abc.png"') == 1
    assert "images/a.png" not in html
    assert 'src="../../videos/x.mp4"' in html
    assert "854×480" in html
    assert "131,250" in html
    assert html.count("<tr data-row=") == 2


def test_comparison_view_renders_every_row_and_model_video(grid: dict[str, Any], page: Page) -> None:  # noqa: F811
    """In Chromium the comparison page shows each input image beside its videos, one column per model, each playable."""
    dest: Path = grid["dest"]
    manifest: pd.DataFrame = grid["manifest"]
    compare = dest / "runs" / grid["run"] / "compare.html"
    seen = Seen(page)
    page.goto(compare.as_uri())
    headers = page.locator("#comparison thead th[data-model]").all_text_contents()
    assert headers == list(MODELS)
    assert page.locator("#comparison tbody tr").count() == 3
    assert page.locator("td.input img").count() == 3
    page.wait_for_function("() => [...document.querySelectorAll('td.input img')].every(i => i.complete)")
    assert page.locator("td.input img").evaluate_all("images => images.map(i => i.naturalWidth)") == [48] * 3
    completed = manifest[manifest["status"] == "completed"]
    cells = page.locator("#comparison td[data-model] video")
    assert cells.count() == len(completed) == 8
    for row in completed.itertuples():
        video = page.locator(f'tr[data-row="{row.row_index}"] td[data-model="{row.model}"] video')
        assert video.get_attribute("src") == f"../../{row.video_uri}"
        facts = video.locator("xpath=following-sibling::dl").inner_text()
        assert f"{row.width}×{row.height}" in facts
        assert f"{row.duration_s:.1f} s" in facts
    widths = page.evaluate(
        """async () => Promise.all([...document.querySelectorAll('video')].map(v => new Promise((done, fail) => {
            v.addEventListener('loadeddata', () => done(v.videoWidth)); v.addEventListener('error', fail);
            v.preload = 'auto'; v.load(); })))"""
    )
    assert len(widths) == 8
    assert all(width > 0 for width in widths), "every pair's video decodes in the page"
    failed = manifest[manifest["status"] == "failed"].iloc[0]
    cell = page.locator(f'tr[data-row="{failed.row_index}"] td[data-model="{failed.model}"]')
    assert "404" in cell.inner_text()
    assert seen.errors == []
    assert {url.split(":", 1)[0] for url in seen.requests} <= {"file", "data"}, seen.requests
