"""`i2v rerun` and `i2v status` as a user runs them, against the emulator.

One first run makes a destination of ten rows: seven videos, one moderation failure (row 7,
a permanent failure) and two invalid rows. Reruns then keep each row's index and id, work
from the destination's manifest, a run's own manifest or the CSV one, say what they run and
what they leave, and do nothing (no key, no Prefect) when there is nothing to run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from i2v.api.models import DEFAULT_MODEL, MODELS
from i2v.cli import arguments
from tests.emulated import Emulator, emulator
from tests.runs import I2V, cli_env, write_rows

pytestmark = pytest.mark.prefect


@dataclass
class Made:
    """The destination of the first run, and what made it."""

    emu: Emulator
    env: dict[str, str]
    root: Path
    dest: Path


def _i2v(args: list[str], env: dict[str, str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(I2V), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _no_key(env: dict[str, str], prefect_home: Path) -> dict[str, str]:
    """The environment without an API key or base URL, and with a Prefect home no run has used."""
    bare = {k: v for k, v in env.items() if not k.startswith("AIMLAPI_")}
    bare["PREFECT_HOME"] = str(prefect_home)
    return bare


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    """A first run: rows 0-6 complete, row 7 fails moderation, rows 8 and 9 are invalid."""
    root = tmp_path_factory.mktemp("rerun")
    write_rows(root, 1)
    lines = [f"r{i},{'ab'[i % 2]}.png,Scene {i} of the harbour,5,480p" for i in range(7)]
    lines += ["r7,a.png,A forbidden door,5,480p", "r8,b.png,A bad duration,five,480p", "r9,a.png,,5,480p"]
    (root / "mixed.csv").write_text("id,image_url,prompt,duration,resolution\n" + "\n".join(lines) + "\n")
    with emulator() as emu:
        env = cli_env(emu.base_url, emu.api_key, root / "prefect")
        first = _i2v(["run", "mixed.csv", "--dest", "out", "--poll-interval", "0.2", "-q"], env, cwd=root)
        assert first.returncode == 1, first.stdout + first.stderr
        yield Made(emu, env, root, root / "out")


def _merged(made: Made) -> pd.DataFrame:
    return pd.read_parquet(made.dest / "manifest.parquet").set_index("id")


def _runs(made: Made) -> list[str]:
    return sorted(path.name for path in (made.dest / "runs").iterdir())


def test_a_rerun_with_nothing_to_run_says_what_it_leaves_without_key_or_prefect(made: Made, tmp_path: Path) -> None:
    """Nothing to run: exit 0, no API key, no Prefect; names the permanent failure, its flag, the invalid rows."""
    runs, created = _runs(made), made.emu.created()
    home = tmp_path / "unused-prefect-home"
    done = _i2v(["rerun", str(made.dest / "manifest.parquet")], _no_key(made.env, home))
    assert done.returncode == 0, done.stderr
    assert "8 row(s); 0 to run again" in done.stdout
    assert "left: 1 row(s) failed for good [generation_failed 1]: --include-failed takes them" in done.stdout
    assert "left: 2 row(s) invalid in the input [invalid_input 2]" in done.stdout
    assert "left: 7 row(s) with a stored video" in done.stdout
    assert not home.exists(), "Prefect was not started"
    assert (_runs(made), made.emu.created()) == (runs, created)


def test_dry_run_lists_the_rows_it_would_run_from_the_csv_manifest(made: Made, tmp_path: Path) -> None:
    """`--dry-run` on manifest.csv lists row 7 by index and id, in text and JSON, and sends nothing."""
    runs, created = _runs(made), made.emu.created()
    env = _no_key(made.env, tmp_path / "unused")
    manifest = str(made.dest / "manifest.csv")
    text = _i2v(["rerun", manifest, "--include-failed", "--dry-run"], env)
    assert text.returncode == 0, text.stderr
    assert "8 row(s); 1 to run again (generation_failed 1)" in text.stdout
    assert "  row 7 (r7): generation_failed:" in text.stdout
    document = _i2v(["rerun", manifest, "--include-failed", "--dry-run", "--json"], env)
    assert document.returncode == 0, document.stderr
    plan = json.loads(document.stdout)
    assert (plan["rows"], plan["to_run"], plan["dry_run"]) == (8, 1, True)
    assert plan["rows_to_run"][0]["row_index"] == 7
    assert plan["rows_to_run"][0]["id"] == "r7"
    assert plan["left"]["invalid"] == {"invalid_input": 2}
    assert (_runs(made), made.emu.created()) == (runs, created)


def test_a_missing_kept_image_is_one_line_before_anything_runs(made: Made, tmp_path: Path) -> None:
    """A row to run whose kept input image is gone from inputs/: exit 2, one line naming the row."""
    copy = tmp_path / "copy"
    shutil.copytree(made.dest, copy)
    shutil.rmtree(copy / "inputs")
    done = _i2v(["rerun", str(copy / "manifest.parquet"), "--include-failed"], made.env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"i2v: error: 1 row(s) to run again (rows 7) name an input image missing from {copy}/inputs"
    ]


def test_a_rerun_of_a_runs_own_manifest_keeps_row_index_and_id(made: Made) -> None:
    """`rerun runs/<run>/manifest.parquet` inside the destination: the image comes from its inputs/, row 7 stays 7."""
    (first_run,) = _runs(made)
    manifest = f"runs/{first_run}/manifest.parquet"
    done = _i2v(["rerun", manifest, "--failed", "--poll-interval", "0.2"], made.env, cwd=made.dest)
    assert done.returncode == 1, done.stdout + done.stderr  # moderation fails it again
    assert "1 to run again (generation_failed 1)" in done.stdout
    assert "row 7 (r7): generation_failed" in done.stdout
    assert "row 0" not in done.stdout
    merged = _merged(made)
    assert merged.loc["r7", "row_index"] == 7
    assert merged.loc["r7", "attempts"] == 2
    assert sorted(merged["row_index"]) == list(range(8)), "every row with work keeps its own index"
    rerun = pd.read_parquet(made.dest / "runs" / _runs(made)[-1] / "manifest.parquet")
    assert list(rerun["row_index"]) == [7]
    assert list(rerun["id"]) == ["r7"]


def test_a_rerun_of_the_csv_manifest_runs_and_reports_json(made: Made) -> None:
    """From manifest.csv with --json: one document with the plan and the summary, the failure at row 7."""
    manifest = str(made.dest / "manifest.csv")
    done = _i2v(["rerun", manifest, "--failed", "--poll-interval", "0.2", "--json", "-q"], made.env)
    assert done.returncode == 1, done.stderr[-3000:]
    document = json.loads(done.stdout)
    assert document["plan"]["to_run"] == 1
    assert document["plan"]["rows_to_run"][0]["row_index"] == 7
    assert document["total"] == 1
    assert document["failed"] == 1
    assert document["first_failures"][0]["row_index"] == 7
    assert document["first_failures"][0]["id"] == "r7"
    assert _merged(made).loc["r7", "attempts"] == 3


def test_status_shows_runs_rows_cost_and_what_a_rerun_would_do(made: Made, tmp_path: Path) -> None:
    """`i2v status DEST` (text and --json): its runs, rows by status, credits and USD, the rerun's plan; no key."""
    env = _no_key(made.env, tmp_path / "unused")
    runs = _runs(made)
    text = _i2v(["status", str(made.dest)], env)
    assert text.returncode == 0, text.stderr
    assert f"runs: {len(runs)}" in text.stdout
    assert "rows: 8: 7 completed, 1 failed, 0 skipped" in text.stdout
    assert "cost: " in text.stdout
    assert "credits, $" in text.stdout
    assert "--include-failed takes them" in text.stdout
    assert "left: 2 row(s) invalid in the input [invalid_input 2]" in text.stdout
    document = json.loads(_i2v(["status", str(made.dest), "--json"], env).stdout)
    assert [run["run"] for run in document["runs"]] == runs
    assert document["runs"][0]["rows"] == 10
    rows = document["rows"]
    assert (rows["total"], rows["completed"], rows["failed"]) == (8, 7, 1)
    assert rows["failed_by_kind"] == {"generation_failed": 1}
    assert rows["credits_used"] > 0
    assert document["usd_spent"] > 0
    assert document["rerun"]["to_run"] == 0
    assert document["rerun"]["left"]["permanent"] == {"generation_failed": 1}
    assert document["rerun"]["left"]["invalid"] == {"invalid_input": 2}
    assert document["unknown_rows"] == []
    assert document["claimed_rows"] == {}
    assert not (tmp_path / "unused").exists()


def test_status_of_a_file_is_one_line(tmp_path: Path) -> None:
    """`i2v status` on a file: exit 2, one line saying a destination is a folder."""
    (tmp_path / "f.txt").write_text("x")
    done = _i2v(["status", str(tmp_path / "f.txt")], dict(os.environ))
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"i2v: error: {tmp_path / 'f.txt'} is not a folder: give a destination (a folder or s3://bucket/prefix)"
    )


def test_models_json_lists_every_model_and_its_parameters() -> None:
    """`i2v models --json`: every model, its routes and each field's kind, choices and default, or why it cannot run."""
    done = _i2v(["models", "--json"], dict(os.environ))
    assert done.returncode == 0, done.stderr
    models = {model["id"]: model for model in json.loads(done.stdout)}
    assert set(models) == set(MODELS)
    assert models[DEFAULT_MODEL]["default"]
    for model in models.values():
        assert model["supported"] or model["reason"], model["id"]
        for route in model["routes"]:
            assert route["path"].startswith("/")
            assert all("kind" in field for field in route["fields"].values())


@pytest.mark.parametrize(
    ("argv", "select", "unknown"),
    [
        (["run", "in.csv", "--dest", "o", "--include-failed", "--include-unknown"], "failed", True),
        (["run", "in.csv", "--dest", "o", "--retry-failed", "all", "--resubmit-unknown"], "failed", True),
        (["run", "in.csv", "--dest", "o", "--retry-failed", "retryable"], "retryable", False),
        (["rerun", "m.parquet", "--include-failed", "--include-unknown"], "failed", True),
        (["rerun", "m.parquet", "--failed"], "failed", False),
        (["rerun", "m.parquet", "--retryable"], "retryable", False),
        (["rerun", "m.parquet"], "retryable", False),
    ],
)
def test_run_and_rerun_share_flag_names_and_keep_the_old_ones(argv: list[str], select: str, unknown: bool) -> None:
    """--include-failed / --include-unknown on both commands; the old spellings still mean the same."""
    args = arguments.build_parser().parse_args(argv)
    assert (arguments.selected(args), args.include_unknown) == (select, unknown)


def test_old_spellings_are_hidden_from_help() -> None:
    """--help shows the one scheme; the old spellings (and demo --csv) are not listed."""
    for command, old in (
        ("run", "--retry-failed"),
        ("run", "--resubmit-unknown"),
        ("rerun", "--failed "),
        ("demo", "--csv"),
    ):
        shown = _i2v([command, "--help"], dict(os.environ)).stdout
        assert old not in shown, (command, old)
        assert command == "demo" or "--include-failed" in shown
    args = arguments.build_parser().parse_args(["demo", "--csv", "x.csv"])
    assert (args.input, args.csv) == (None, "x.csv")
    assert arguments.build_parser().parse_args(["demo", "y.csv"]).input == "y.csv"
