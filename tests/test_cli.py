"""The i2v command: one-line errors, the model listing, the demo end to end, processes that end with it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from i2v.api.models import MODELS
from i2v.cli.main import REPO_ROOT, main
from i2v.demo import SAMPLE_CSV
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
    """`i2v models` shows every catalogued model, its paths, parameter choices, price, and why some are unsupported."""
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "alibaba/wan-2-6-i2v  Wan 2.6 (Image-to-Video)  [also: alibaba/wan2.6-i2v]" in out
    assert "POST /v2/generate/video/alibaba/generation" in out
    assert "duration: integer one of 5, 10, 15, default 10" in out
    assert "bytedance/omnihuman" in out
    assert "unsupported: needs audio_url (an audio track)" in out
    assert f"{len(MODELS)} models, {sum(s.supported for s in MODELS.values())} supported" in out
    assert "defaults cost about" in out


def test_models_json_and_one_model(capsys: pytest.CaptureFixture[str]) -> None:
    """`i2v models --json` lists every model for scripts; `i2v models NAME` shows one by any of its names."""
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {entry["id"] for entry in listed} == set(MODELS)
    wan25 = next(entry for entry in listed if entry["id"] == "alibaba/wan2.5-i2v-preview")
    assert wan25["default"]
    assert wan25["supported"]
    assert wan25["routes"][0]["fields"]["resolution"] == {
        "kind": "string",
        "choices": ["480p", "720p", "1080p"],
        "default": "1080p",
    }
    assert main(["models", "alibaba/wan2.6-i2v"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("alibaba/wan-2-6-i2v")
    assert "models," not in one


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
    sample = pd.read_csv(SAMPLE_CSV)
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


def _i2v(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``i2v`` command with a Prefect home of its own and no API settings but ``env``'s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI_", "PREFECT_API"))}
    clean |= {"PREFECT_HOME": str(cwd / "prefect"), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90", **env}
    return subprocess.run(
        [str(Path(sys.executable).with_name("i2v")), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_reruns_leave_every_rows_latest_outcome_in_the_destinations_report(tmp_path: Path) -> None:
    """After the demo, a no-op re-run and a one-row rerun, report.html holds each row's latest outcome."""
    from tests.emulated import emulator
    from tests.test_report_page import records

    dest = tmp_path / "demo"
    demo = ["demo", "--dest", str(dest), "--generation-seconds", "0.5"]
    first = _i2v(demo, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = _i2v(demo, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    (second,) = sorted(p.name for p in (dest / "runs").iterdir())[1:]

    page = (dest / "report.html").read_text(encoding="utf-8")
    root = {row["id"]: row for row in records(page)}
    assert len(root) == 8, "every valid row of the sample: invalid rows never reach the destination's manifest"
    completed = {i for i, row in root.items() if row["status"] == "completed"}
    assert len(completed) == 7, "a re-run that only skips hides none of the first run's videos"
    assert all(root[i]["video"] == f"videos/{i}.mp4" and (dest / root[i]["video"]).is_file() for i in completed)
    assert (root["library"]["status"], root["library"]["error_kind"]) == ("failed", "generation_failed")
    image = root["library"]["image"]
    assert image.startswith("inputs/"), "the failed card shows the input image, copied into the destination"
    assert (dest / image).is_file()
    totals = dict(re.findall(r'<dd data-total="(\w+)">([^<]*)</dd>', page))
    assert (totals["runs"], totals["completed"], totals["skipped"]) == ("2", "7", "0")
    assert re.fullmatch(r"\$\d+\.\d\d", totals["usd"]), totals["usd"]
    assert totals["usd"] != "$0.00"
    assert re.fullmatch(r"[\d,]+ credits \(\$\d+\.\d\d\)", totals["estimate"]), totals["estimate"]
    assert f"runs/{second}/report.html" in again.stdout, "the summary points at the run's own page"
    own = records((dest / "runs" / second / "report.html").read_text(encoding="utf-8"))
    assert len(own) == 10, "the run's page: one row per input row"
    assert {row["status"] for row in own} == {"skipped", "failed"}

    # The emulator lets the moderated prompt through this time: the rerun makes its video.
    with emulator(blocked_terms=(), short_side=None) as emu:
        rerun = _i2v(
            ["rerun", str(dest / "manifest.parquet"), "--failed", "--poll-interval", "0.2"],
            tmp_path,
            AIMLAPI_BASE_URL=emu.base_url,
            AIMLAPI_API_KEY=emu.api_key,
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert emu.created() == 1
    runs = sorted(p.name for p in (dest / "runs").iterdir())
    assert len(runs) == 3
    assert all((dest / "runs" / run / "report.html").is_file() for run in runs), "a page for every run"
    assert len(records((dest / "runs" / runs[-1] / "report.html").read_text(encoding="utf-8"))) == 1
    page = (dest / "report.html").read_text(encoding="utf-8")
    after = {row["id"]: row for row in records(page)}
    assert {i: row["status"] for i, row in after.items()} == dict.fromkeys(root, "completed"), (
        "the rerun's one row joins the seven videos made before; none vanish"
    )
    assert after["library"]["run"] == runs[-1]
    assert {after[i]["run"] for i in completed} == {runs[0]}
    assert re.search(r'<dd data-total="completed">8</dd>', page)


#: Starts a child that ignores SIGTERM, watches for its parent's end and starts a grandchild; prints their pids.
_PARENT = """
import os, signal, subprocess, sys, time
from i2v.cli import lifetime
child = '''
import os, signal, subprocess, sys, time
from i2v.cli import lifetime
signal.signal(signal.SIGTERM, signal.SIG_IGN)
lifetime.end_when_orphaned(int(sys.argv[1]), grace_s=1.0)
sleeper = subprocess.Popen(['sleep', '60'])
print(os.getpid(), sleeper.pid, flush=True)
time.sleep(60)
'''
subprocess.Popen([sys.executable, '-c', child, str(os.getpid())], start_new_session=True,
                 preexec_fn=lifetime.ends_with_parent(signal.SIGTERM))
time.sleep(60)
"""

#: A parent that ends before its child asks to end with it; the child notes how far it got.
_LATE = """
import os, signal, sys
from i2v.cli import lifetime
preexec = lifetime.ends_with_parent(signal.SIGTERM)
me = os.getpid()
if os.fork():
    os._exit(0)
print(os.getpid(), flush=True)
while os.getppid() == me:
    pass
with open(sys.argv[1], 'w') as note:
    note.write('asked')
preexec()
with open(sys.argv[1], 'a') as note:
    note.write(' and lived on')
"""


def _gone(pids: list[int], within_s: float) -> bool:
    """Whether every process of ``pids`` has ended (zombies included) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        alive = 0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                alive += psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_an_orphaned_run_that_does_not_stop_is_killed_after_its_grace_period() -> None:
    """A child left without its parent that ignores the SIGTERM is killed, and its own child, after a grace period."""
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids = [int(word) for word in parent.stdout.readline().split()]
        parent.kill()
        parent.wait(10)
        time.sleep(0.2)
        assert not _gone(pids, within_s=0), "SIGTERM is ignored: the grace period runs"
        assert _gone(pids, within_s=10), "killed once the grace period is over, the grandchild too"
    finally:
        parent.kill()
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_whose_parent_ended_before_it_asked_exits(tmp_path: Path) -> None:
    """A child whose parent ended before it asked to be signalled on that end exits at once."""
    note = tmp_path / "note"
    done = subprocess.run(
        [sys.executable, "-c", _LATE, str(note)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert _gone([int(done.stdout)], within_s=10)
    assert note.read_text() == "asked"
