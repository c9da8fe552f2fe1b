"""A run into a destination that fills up, as a user runs it: ``i2v run`` on a small tmpfs.

The destination is a tmpfs mounted for the test and filled with one file until only a
little room is left: enough for the journal, records and manifest, not for a video, or
none at all. The run must end as any run does (its summary, its manifest, a non-zero
exit), its paid rows retryable; once room is made, a plain rerun finishes them by
collecting their journaled jobs, paying nothing again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.disks import fill, free_bytes, small_disk
from tests.emulated import Emulator, emulator
from tests.runs import cli_env, run

pytestmark = pytest.mark.prefect

ROWS = 4
KiB = 1024


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the module's runs (its database is migrated once)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """Videos of about 700 KiB (noise zoomed at 480p for 10 s), their jobs all made before the first is done."""
    with emulator(short_side=None, fps=8, generation_seconds=1.5, generation_jitter=0.0) as running:
        yield running


def _input(folder: Path) -> Path:
    """Four rows over two noisy images (small files, large videos)."""
    rng = np.random.default_rng(7)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (54, 96, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    csv = folder / "rows.csv"
    lines = [f"{'ab'[i % 2]}.png,Static over the harbour {i},10,480p" for i in range(ROWS)]
    csv.write_text("image_url,prompt,duration,resolution\n" + "\n".join(lines) + "\n")
    return csv


def _args(csv: Path, dest: Path) -> list[str]:
    return ["run", str(csv), "--dest", str(dest), "--max-in-flight", "4", "--poll-interval", "0.2"]


def _run_manifest(folder: Path) -> pd.DataFrame:
    (path,) = folder.glob("runs/*/manifest.parquet")
    return pd.read_parquet(path)


def test_a_nearly_full_destination_ends_the_run_with_its_manifest_and_a_rerun_pays_nothing_again(
    emu: Emulator, tmp_path: Path, prefect_home: Path
) -> None:
    """No room for the videos: summary, manifest, exit non-zero, rows retryable; with room, the rerun re-attaches."""
    csv = _input(tmp_path)
    env = cli_env(emu.base_url, emu.api_key, prefect_home)
    log = tmp_path / "i2v.log"
    with small_disk(tmp_path / "disk", "8m") as disk:
        dest = disk / "out"
        stale = dest / "videos" / ".lost.mp4.0123456789abcdef0123456789abcdef.part"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"half a video from a killed run")
        two_hours_ago = time.time() - 7200
        os.utime(stale, (two_hours_ago, two_hours_ago))
        # Room for every small file of the run, not for one of its videos (660 to 740 KiB each).
        filler = fill(disk, leave=384 * KiB)

        status = run(_args(csv, dest), env, log, cwd=tmp_path)
        said = log.read_text()
        assert status != 0, said[-3000:]
        assert f"{ROWS} rows: 0 completed, 0 skipped, {ROWS} failed" in said, said[-3000:]
        assert "No space left on device" in said
        assert "Traceback" not in said, said[-3000:]
        assert not (tmp_path / "i2v-fallback").exists(), "the destination took the manifest"
        first = _run_manifest(dest)
        assert len(first) == ROWS
        assert set(first["error_kind"]) == {"storage"}, first[["status", "error_kind", "error_message"]].to_string()
        assert set(first["retryable"]) == {True}
        assert first["generation_id"].notna().all(), "every row was paid for: its job is journaled"
        assert emu.created() == ROWS
        assert not stale.exists(), "the killed run's temporary file is cleaned up at the start of the run"
        assert not list(dest.rglob(".*.part")), "no temporary file of this run is left either"

        filler.unlink()
        assert free_bytes(disk) > 4 * 1024 * KiB
        assert run(_args(csv, dest), env, log, cwd=tmp_path) == 0, log.read_text()[-3000:]
        assert emu.created() == ROWS, "no new create: every row's journaled job was collected"
        assert emu.stats()["billed_twice"] == 0
        merged = pd.read_parquet(dest / "manifest.parquet")
        assert set(merged["status"]) == {"completed"}
        assert sorted(merged["generation_id"]) == sorted(first["generation_id"])
        assert all((dest / uri).is_file() for uri in merged["video_uri"])


def test_a_full_destination_still_gets_its_manifest_written_to_a_local_folder(
    emu: Emulator, tmp_path: Path, prefect_home: Path
) -> None:
    """No room at all: nothing is paid, the manifest goes to ./i2v-fallback/<run>/, said on stderr; exit non-zero."""
    csv = _input(tmp_path)
    env = cli_env(emu.base_url, emu.api_key, prefect_home)
    log = tmp_path / "i2v.log"
    with small_disk(tmp_path / "disk", "2m") as disk:
        dest = disk / "out"
        dest.mkdir()
        fill(disk, leave=0)
        status = run(_args(csv, dest), env, log, cwd=tmp_path)
    said = log.read_text()
    assert status != 0, said[-3000:]
    assert emu.created() == 0, "a destination that takes nothing gets no work paid for"
    assert f"{ROWS} rows: 0 completed, 0 skipped, {ROWS} failed" in said, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    (folder,) = (tmp_path / "i2v-fallback").iterdir()
    assert f"refused the run's manifest; it is in {folder}" in said
    manifest = _run_manifest(folder)
    assert len(manifest) == ROWS
    assert set(manifest["error_kind"]) == {"storage"}
    assert set(manifest["retryable"]) == {True}
    assert (folder / "runs" / folder.name / "manifest.csv").is_file()
