"""`i2v run` finds the usual mistakes before Prefect starts: one line on stderr, exit 2, in a second or two."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.emulated import emulator
from tests.runs import I2V, cli_env, write_rows

#: Well under Prefect's start-up (10 s and more): the mistake is found before it.
QUICK_S = 8.0


def _i2v(args: list[str], env: dict[str, str], *, timeout: float = 120) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run([str(I2V), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env("http://127.0.0.1:9", "sk-test", tmp_path / "prefect", **extra)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"one line, no traceback: {stderr!r}"
    return lines[0]


def test_a_destination_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    """`--dest` naming an existing file: exit 2 at once, naming the file."""
    csv = write_rows(tmp_path, 2)
    target = tmp_path / "taken.txt"
    target.write_text("not a folder")
    code, _, err, took = _i2v(["run", str(csv), "--dest", str(target)], _env(tmp_path))
    assert code == 2
    assert _one_line(err) == f"i2v: error: destination {target} is a file, not a folder"
    assert took < QUICK_S


def test_an_s3_destination_without_credentials_is_one_line(tmp_path: Path, s3_endpoint: str) -> None:
    """`--dest s3://...` with no AWS credentials: exit 2 at once, saying which bucket has none."""
    csv = write_rows(tmp_path, 2)
    env = _env(
        tmp_path,
        AWS_ENDPOINT_URL=s3_endpoint,
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    code, _, err, took = _i2v(["run", str(csv), "--dest", "s3://some-bucket/run"], env)
    assert code == 2
    assert _one_line(err).startswith("i2v: error: no credentials for bucket 'some-bucket'")
    assert took < QUICK_S


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--max-failure-ratio", "5"], "--max-failure-ratio must be between 0 and 1, got 5"),
        (["--max-credits", "-3"], "--max-credits must not be negative"),
        (["--poll-interval", "0"], "--poll-interval must be positive"),
    ],
)
def test_settings_out_of_range_are_one_line(tmp_path: Path, option: list[str], said: str) -> None:
    """An option out of its range: exit 2 at once, naming the option as typed."""
    csv = write_rows(tmp_path, 2)
    code, _, err, took = _i2v(["run", str(csv), "--dest", str(tmp_path / "out"), *option], _env(tmp_path))
    assert code == 2
    assert said in _one_line(err)
    assert took < QUICK_S


def test_columns_of_other_names_are_read_with_image_col_and_prompt_col(tmp_path: Path) -> None:
    """`--image-col` and `--prompt-col` read an input whose columns have other names; a missing one is named."""
    write_rows(tmp_path, 1)
    csv = tmp_path / "named.csv"
    csv.write_text("picture,caption,duration,resolution\na.png,A calm lake at dawn,5,480p\n")
    env = _env(tmp_path)
    code, out, err, _ = _i2v(["validate", str(csv), "--no-network", "--json"], env)
    assert code == 2
    assert "--image-col NAME or --prompt-col NAME" in _one_line(err)
    code, out, err, _ = _i2v(
        ["validate", str(csv), "--no-network", "--json", "--image-col", "picture", "--prompt-col", "caption"], env
    )
    assert code == 0, err
    assert json.loads(out)["rows"] == 1
    code, _, err, _ = _i2v(["validate", str(csv), "--no-network", "--image-col", "photo"], env)
    assert code == 2
    assert "has no column 'photo' to read as image_url" in _one_line(err)


def test_a_tab_separated_file_gets_a_delimiter_hint(tmp_path: Path) -> None:
    """A header separated by tabs is named as such, with what to do."""
    csv = tmp_path / "tabs.csv"
    csv.write_text("image_url\tprompt\nhttps://example.com/a.png\tA calm lake\n")
    code, _, err, _ = _i2v(["validate", str(csv), "--no-network"], _env(tmp_path))
    assert code == 2
    assert "separated by tabs: save it as comma-separated CSV" in _one_line(err)


def test_run_help_shows_the_defaults_rows_fall_back_to_and_their_price(tmp_path: Path) -> None:
    """`run --help` says what a row naming nothing asks for (wan2.5 at 1080p, 10 s) and what that costs."""
    code, out, _, _ = _i2v(["run", "--help"], _env(tmp_path))
    text = " ".join(out.split())
    assert code == 0
    assert "alibaba/wan2.5-i2v-preview's defaults: resolution 1080p, duration 10" in text
    assert "$1.41, a video" in text


def test_debug_may_follow_the_subcommand(tmp_path: Path) -> None:
    """`i2v run ... --debug` is accepted as `i2v --debug run ...` is: the error comes with its traceback."""
    target = tmp_path / "taken.txt"
    target.write_text("x")
    csv = write_rows(tmp_path, 1)
    code, _, err, _ = _i2v(["run", str(csv), "--dest", str(target), "--debug"], _env(tmp_path))
    assert code != 0
    assert "Traceback" in err
    assert "is a file, not a folder" in err


def test_run_json_prints_one_document_with_the_summary(tmp_path: Path) -> None:
    """`run --json` ends with one JSON document on stdout: counts, why rows were skipped, where the outputs are."""
    csv = write_rows(tmp_path, 3)
    dest = tmp_path / "out"
    with emulator(generation_seconds=0.3) as emu:
        env = cli_env(emu.base_url, emu.api_key, tmp_path / "prefect")
        args = ["run", str(csv), "--dest", str(dest), "--poll-interval", "0.2", "--json"]
        first, out, err, _ = _i2v(args, env, timeout=300)
        assert first == 0, err[-2000:]
        again, out_again, _, _ = _i2v(args, env, timeout=300)
    document = json.loads(out)
    assert (document["total"], document["completed"]) == (3, 3)
    assert document["manifest"].startswith(str(dest / "runs"))
    assert json.loads(out_again)["skipped_by_kind"] == {"already_done": 3}
    assert again == 0
