"""Installing ``i2v`` as a user does: the built wheel, in an environment of its own, run from elsewhere.

The wheel is built from this tree (``uv build --wheel``) and installed with ``uv tool
install`` (what the README's quick start says) into a tool folder and a bin folder under
the test's temporary folder, with the locked versions (``uv export``) as constraints. Its
``i2v`` then runs from a temporary working folder with only that bin folder added to the
system's PATH, so nothing of the repository (its ``.venv``, its files, its working
folder) can stand in for what the wheel lacks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from i2v.cli.main import main
from i2v.demo import SAMPLE_CSV
from i2v.media.probe import probe

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    """`i2v --version` prints the installed distribution's version and exits 0."""
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out == f"i2v {VERSION}\n"


def test_bare_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `i2v` is a question, not a mistake: the help on stdout, status 0."""
    assert main([]) == 0
    seen = capsys.readouterr()
    assert seen.out.startswith("usage: i2v")
    for command in ("run", "rerun", "validate", "estimate", "demo", "models", "emulator"):
        assert f"\n    {command} " in seen.out
    assert seen.err == ""


def _uv() -> str:
    """The uv that `make` bootstraps (``.tools/bin/uv``), else one on PATH."""
    bootstrapped = REPO / ".tools" / "bin" / "uv"
    found = str(bootstrapped) if bootstrapped.is_file() else shutil.which("uv")
    assert found, "uv is missing: `make .venv/.synced` installs it into .tools/"
    return found


def _run(
    command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def test_the_built_wheel_installs_and_runs_the_demo(tmp_path: Path) -> None:
    """`uv tool install` of the wheel gives an `i2v` on PATH whose demo runs from any folder."""
    uv = _uv()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI_", "PREFECT_", "I2V_", "UV_"))}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX"):
        base.pop(name, None)
    # The system's PATH without this repository's environment.
    venv_bin = str(Path(sys.executable).parent)
    path = [entry for entry in base.get("PATH", os.defpath).split(os.pathsep) if entry and entry != venv_bin]
    bin_dir, tool_dir = tmp_path / "bin", tmp_path / "tools"
    env = {**base, "UV_TOOL_DIR": str(tool_dir), "UV_TOOL_BIN_DIR": str(bin_dir), "UV_NO_PROGRESS": "1"}

    built = _run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(REPO)], cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("i2v_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    images = {f"i2v/demo/{line.split(',')[1]}" for line in SAMPLE_CSV.read_text().splitlines()[1:]}
    shipped = {"i2v/demo/sample.csv", "i2v/report/page.css", "i2v/report/page.js"} | images
    assert shipped - names == {"i2v/demo/images/no-such-picture.png"}, "package data in the wheel"
    assert "i2v/demo/draw_images.py" not in names

    locked = _run(
        [uv, "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project", "--format", "requirements-txt"],
        cwd=REPO,
        env=env,
    )
    assert locked.returncode == 0, locked.stderr[-3000:]
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(locked.stdout)
    installed = _run(
        [uv, "tool", "install", "--python", sys.executable, "--constraints", str(constraints), str(wheel)],
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (bin_dir / "i2v").is_file()

    work = tmp_path / "elsewhere"
    work.mkdir()
    user = {**base, "PATH": os.pathsep.join([str(bin_dir), *path]), "PREFECT_HOME": str(tmp_path / "prefect")}

    def i2v(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _run(["i2v", *args], cwd=work, env=user, timeout=timeout)

    assert shutil.which("i2v", path=user["PATH"]) == str(bin_dir / "i2v")
    version = i2v("--version")
    assert (version.returncode, version.stdout) == (0, f"i2v {VERSION}\n")
    helped = i2v("--help")
    assert helped.returncode == 0
    assert "demo" in helped.stdout
    bare = i2v()
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == helped.stdout
    models = i2v("models")
    assert models.returncode == 0
    assert "alibaba/wan2.5-i2v-preview" in models.stdout
    # The package imported is the installed one, not this tree.
    python = next((tool_dir / "i2v-pipeline" / "bin").glob("python3*"))
    where = _run([str(python), "-c", "import i2v.demo; print(i2v.demo.SAMPLE_CSV)"], cwd=work, env=user)
    assert Path(where.stdout.strip()).is_relative_to(tool_dir), where.stdout

    dest = work / "demo"
    demo = i2v("demo", "--dest", str(dest), "--generation-seconds", "1", timeout=240)
    assert demo.returncode == 0, demo.stderr[-3000:]
    sample = pd.read_csv(SAMPLE_CSV)
    (run,) = (dest / "runs").iterdir()
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert manifest["id"].tolist() == sample["id"].tolist()
    completed = manifest[manifest["status"] == "completed"]
    assert len(completed) == len(sample) - 3, "all but the sample's three failures on purpose"
    for uri in completed["video_uri"]:
        assert probe(dest / uri).duration_s > 0
    assert (dest / "manifest.parquet").is_file()
    assert (dest / "report.html").is_file()
    assert "manifest:" in demo.stdout
