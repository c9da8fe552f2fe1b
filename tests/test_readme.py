"""The README's commands run as written, so that it cannot drift from the command.

A fenced block of README.md runs when the line before its opening fence is
``<!-- tested -->``, or ``<!-- tested: needs FILE ... -->`` (then the test first draws
those images, standing in for the user's own). The marked blocks run in README order as
one bash script in a temporary folder, so what one block writes the next one reads;
``python`` blocks run with this interpreter from inside that script. Against real parts on
loopback: an emulator of the API (``AIMLAPI_API_KEY=...`` and ``AIMLAPI_BASE_URL=...`` in
a block become its key and address, and they are set beforehand for blocks that rely on
the defaults) and moto's S3 server (the buckets the blocks name are created first).
``.venv/bin/i2v`` is called ``i2v``, this environment's.

Every ``sh`` block of the sections a user starts from ("Quick start", "Running on your own
data") is marked either ``tested`` or ``not tested: <why>``, so a new command there cannot
go untested by accident.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from tests.conftest import EMULATOR_KEY

README = Path(__file__).resolve().parents[1] / "README.md"
#: The sections whose every shell block is accounted for.
CHECKED_SECTIONS = ("Quick start", "Running on your own data")
_FENCE = re.compile(r"^```(\w*)\s*$")
_TESTED = re.compile(r"^<!-- tested(?:: needs (?P<needs>[^>]+?))? -->$")
_NOT_TESTED = re.compile(r"^<!-- not tested: .+ -->$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its section (the ``##`` heading above it), language, marker line and text."""

    section: str
    language: str
    marker: str
    text: str
    line: int

    @property
    def tested(self) -> bool:
        return _TESTED.match(self.marker) is not None

    @property
    def needs(self) -> list[str]:
        found = _TESTED.match(self.marker)
        return (found["needs"] or "").split() if found else []


def blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, with the line just before its opening fence."""
    found: list[Block] = []
    section, lines = "", markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = _FENCE.match(line.strip())
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        marker = lines[index - 1].strip() if index else ""
        found.append(Block(section, fence[1], marker, "\n".join(lines[index + 1 : end]), index + 1))
        index = end + 1
    return found


def as_run_here(block: Block, *, base_url: str, key: str) -> str:
    """The block as the test runs it: the emulator's key and address, this environment's ``i2v``."""
    if block.language == "python":
        return f"{shlex.quote(sys.executable)} - <<'README_PYTHON'\n{block.text}\nREADME_PYTHON"
    assert block.language == "sh", f"README line {block.line}: a tested block is sh or python"
    text = re.sub(r"AIMLAPI_API_KEY=\S+", f"AIMLAPI_API_KEY={key}", block.text)
    text = re.sub(r"AIMLAPI_BASE_URL=\S+", f"AIMLAPI_BASE_URL={base_url}", text)
    return text.replace(".venv/bin/i2v", "i2v")


def draw(path: Path, shade: int) -> None:
    """A small picture standing in for one of the user's images (its format from its extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (320, 180), (40 + shade * 60 % 200, 90, 160)).save(path)


def test_every_shell_block_a_user_starts_from_is_accounted_for() -> None:
    """In "Quick start" and "Running on your own data": each sh block is tested or says why not; some are tested."""
    found = blocks(README.read_text(encoding="utf-8"))
    for section in CHECKED_SECTIONS:
        shell = [block for block in found if block.section == section and block.language == "sh"]
        assert any(block.tested for block in shell), f"README section {section!r} has no tested block"
        for block in shell:
            assert block.tested or _NOT_TESTED.match(block.marker), (
                f"README line {block.line}: mark the block <!-- tested --> or <!-- not tested: why -->"
            )


def test_marked_blocks_are_told_apart() -> None:
    """The extraction itself: markers, needed files, and the substitutions."""
    text = (
        "## Quick start\n\n<!-- tested: needs photos/a.jpg b.png -->\n```sh\n"
        "export AIMLAPI_API_KEY=sk-...\n"
        "AIMLAPI_BASE_URL=https://api.example AIMLAPI_API_KEY=x .venv/bin/i2v run a.csv\n"
        "```\n\n```sh\nuntested\n```\n\n## Later\n\n<!-- tested -->\n```python\nprint(1)\n```\n"
    )
    first, second, third = blocks(text)
    assert (first.section, first.tested, first.needs) == ("Quick start", True, ["photos/a.jpg", "b.png"])
    assert as_run_here(first, base_url="http://127.0.0.1:9", key="k") == (
        "export AIMLAPI_API_KEY=k\nAIMLAPI_BASE_URL=http://127.0.0.1:9 AIMLAPI_API_KEY=k i2v run a.csv"
    )
    assert not second.tested
    assert (third.section, third.language, third.tested) == ("Later", "python", True)
    assert as_run_here(third, base_url="", key="").endswith("print(1)\nREADME_PYTHON")


def test_readme_commands_run_as_written(tmp_path: Path, start_emulator: Callable[..., str], s3_client: Any) -> None:
    """The marked blocks, in order, against the emulator and S3: every command exits 0."""
    tested = [block for block in blocks(README.read_text(encoding="utf-8")) if block.tested]
    assert tested
    base_url = start_emulator()
    work = tmp_path / "work"
    work.mkdir()
    needed = [name for block in tested for name in block.needs]
    for shade, name in enumerate(needed):
        draw(work / name, shade)
    scripts = [as_run_here(block, base_url=base_url, key=EMULATOR_KEY) for block in tested]
    for bucket in sorted({name for script in scripts for name in re.findall(r"s3://([a-z0-9.-]+)/", script)}):
        s3_client.create_bucket(Bucket=bucket)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI_", "PREFECT_API", "I2V_"))}
    env |= {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
        "AIMLAPI_BASE_URL": base_url,
        "AIMLAPI_API_KEY": EMULATOR_KEY,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    script = "\n\n".join(f"# README line {block.line}\n{text}" for block, text in zip(tested, scripts, strict=True))
    done = subprocess.run(
        ["bash", "-euxo", "pipefail", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-6000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-6000:]
    assert (work / "out" / "demo" / "manifest.parquet").is_file(), "the quick start's demo ran here"
    for summary in work.glob("*.json"):  # what `--json` printed is one JSON document
        assert isinstance(json.loads(summary.read_text()), dict), summary.name
