"""What a rerun finds in the destination, and what it pays for: nothing that is stored and whole.

The engine against the emulator over real HTTP, into real folders: a destination moved
after its first run, records written before outputs were named relative to the root, a
video corrupted at its recorded size, a record written in part, a record that cannot be
read, and an ``id`` brought back for other work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

import i2v.engine.runner as engine_module
from i2v.engine.journal import Journal
from i2v.engine.offload import Offload
from i2v.engine.records import record_key
from i2v.engine.retry import Backoff
from i2v.inputs.row import Row
from i2v.inputs.validation import read_rows
from i2v.manifest import merged
from i2v.manifest import run_table as manifest
from i2v.media.probe import probe
from i2v.outcomes import RowOutcome
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination
from tests.disks import remount, small_disk
from tests.emulated import Emulator, emulator
from tests.engines import engine_on, make_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for name, color in (("a", (200, 80, 20)), ("b", (20, 80, 200))):
        Image.new("RGB", (48, 27), color).save(tmp_path / f"{name}.png")
    return tmp_path


async def _run(emu: Emulator, dest: Path, rows: list[Row], *, run: str) -> list[RowOutcome]:
    async with engine_on(emu, LocalDestination(dest), run=run) as engine:
        return await engine.run_batch(rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_moved_destination_is_recognised_and_nothing_is_paid_again(images: Path, tmp_path: Path) -> None:
    """Outputs are named relative to the root: after `mv out out-moved`, a rerun into out-moved creates nothing."""
    rows = make_rows(images, 3)
    with emulator() as emu:
        first = await _run(emu, tmp_path / "out", rows, run="run-1")
        assert [o.status for o in first] == ["completed"] * 3
        assert all((o.video_uri or "").startswith("videos/") for o in first), [o.video_uri for o in first]
        assert all((o.thumbnail_uri or "").startswith("thumbs/") for o in first)
        (tmp_path / "out").rename(tmp_path / "out-moved")
        again = await _run(emu, tmp_path / "out-moved", rows, run="run-2")
        assert emu.created() == 3, "nothing paid again"
    assert [(o.status, o.error_kind) for o in again] == [("skipped", "already_done")] * 3
    assert [o.video_uri for o in again] == [o.video_uri for o in first]


async def test_records_from_before_with_absolute_paths_still_count_after_a_move(images: Path, tmp_path: Path) -> None:
    """Unsealed records naming videos by absolute path (as written before) are recognised in a moved destination."""
    rows = make_rows(images, 2)
    out = tmp_path / "out"
    with emulator() as emu:
        first = await _run(emu, out, rows, run="run-1")
        for outcome in first:
            assert outcome.row_key is not None
            old = {**outcome.as_dict(), "video_uri": str(out / (outcome.video_uri or ""))}
            old["thumbnail_uri"] = str(out / (outcome.thumbnail_uri or ""))
            (out / record_key(outcome.row_key)).write_text(json.dumps(old, sort_keys=True))
        shutil.move(out, tmp_path / "elsewhere")
        again = await _run(emu, tmp_path / "elsewhere", rows, run="run-2")
        assert emu.created() == 2
    assert [o.error_kind for o in again] == ["already_done"] * 2
    assert [(o.video_uri, o.thumbnail_uri) for o in again] == [(o.video_uri, o.thumbnail_uri) for o in first]


async def test_a_video_corrupted_at_its_recorded_size_is_collected_again(images: Path, tmp_path: Path) -> None:
    """Same size, other bytes: not `already_done`; the journaled job's video is fetched again, unpaid."""
    rows = make_rows(images, 2)
    out = tmp_path / "out"
    with emulator() as emu:
        first = await _run(emu, out, rows, run="run-1")
        video = out / (first[0].video_uri or "")
        whole = video.read_bytes()
        video.write_bytes(whole[:100] + bytes(b ^ 0xFF for b in whole[100:200]) + whole[200:])
        assert video.stat().st_size == first[0].video_bytes
        again = await _run(emu, out, rows, run="run-2")
        assert emu.created() == 2, "collected from its job, not paid for again"
    assert (again[0].status, again[0].generation_id) == ("completed", first[0].generation_id)
    assert again[1].error_kind == "already_done", "the untouched video is still taken as done"
    assert _sha256(video) == first[0].video_sha256
    assert probe(video).frames > 0


async def test_a_torn_record_is_looked_up_again_not_taken_as_no_work(images: Path, tmp_path: Path) -> None:
    """A record cut short, its job no longer deliverable: the stored video is the row's, so nothing is paid again."""
    rows = make_rows(images, 1)
    out = tmp_path / "out"
    dest = LocalDestination(out)
    with emulator() as emu:
        (first,) = await _run(emu, out, rows, run="run-1")
        record = out / record_key(rows[0].key)
        record.write_bytes(record.read_bytes()[:150])
        offload = Offload(1)
        await Journal(dest, offload).ended(rows[0].key, "the provider no longer has it")
        offload.close()
        (again,) = await _run(emu, out, rows, run="run-2")
        assert emu.created() == 1, "no second create for work whose video is stored"
    assert (again.status, again.error_kind) == ("skipped", "already_done")
    assert (again.video_uri, again.video_sha256, again.video_bytes) == (
        first.video_uri,
        first.video_sha256,
        first.video_bytes,
    )
    sealed = json.loads(record.read_bytes())
    assert sealed["record"]["video_sha256"] == first.video_sha256, "the record is written whole again, sealed"


async def test_a_record_that_cannot_be_read_fails_the_row_retryably_and_pays_nothing(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look-up the destination keeps failing is tried again, then fails the row (retryable), never redoes the work."""
    monkeypatch.setattr(engine_module, "STORAGE_BACKOFF", Backoff(attempts=3, initial_s=0.05, max_s=0.1))
    rows = make_rows(images, 1)
    out = tmp_path / "out"
    with emulator() as emu:
        await _run(emu, out, rows, run="run-1")
        offload = Offload(1)
        await Journal(LocalDestination(out), offload).ended(rows[0].key, "the provider no longer has it")
        offload.close()
        record = out / record_key(rows[0].key)
        record.unlink()
        record.mkdir()  # read(2) on it fails with EISDIR, every time
        (again,) = await _run(emu, out, rows, run="run-2")
        assert emu.created() == 1
    assert (again.status, again.error_kind, again.retryable) == ("failed", "storage", True)
    assert "Is a directory" in (again.error_message or "")


def _reused_id_rows(folder: Path, prompt: str, name: str) -> list[Row]:
    csv = folder / name
    csv.write_text(f"id,image_url,prompt,duration,resolution\nharbour,a.png,{prompt},5,480p\n")
    return read_rows(csv).rows


async def test_an_id_reused_for_other_work_never_overwrites_the_earlier_video(images: Path, tmp_path: Path) -> None:
    """Id 'harbour' with a new prompt in a later run gets its own file; both survive, the manifest points at each."""
    out = tmp_path / "out"
    dest = LocalDestination(out)
    first_rows = _reused_id_rows(images, "Boats at dawn", "first.csv")
    later_rows = _reused_id_rows(images, "Boats at dusk", "later.csv")
    assert first_rows[0].key != later_rows[0].key
    with emulator() as emu:
        (first,) = await _run(emu, out, first_rows, run="run-1")
        manifest.write_manifest(dest, [first], run="run-1")
        (later,) = await _run(emu, out, later_rows, run="run-2")
        manifest.write_manifest(dest, [later], run="run-2")
        (again,) = await _run(emu, out, later_rows, run="run-3")
        assert emu.created() == 2
    assert _sha256(out / (first.video_uri or "")) == first.video_sha256, "the earlier video is untouched"
    assert _sha256(out / (later.video_uri or "")) == later.video_sha256
    assert first.video_uri == "videos/harbour.mp4"
    assert later.video_uri == f"videos/harbour-{later_rows[0].key[:8]}.mp4"
    assert (again.error_kind, again.video_uri) == ("already_done", later.video_uri)
    merged.merge(dest)
    root = pd.read_parquet(out / "manifest.parquet").set_index("row_key")
    assert root.loc[first_rows[0].key, "video_uri"] == first.video_uri
    assert root.loc[later_rows[0].key, "video_uri"] == later.video_uri


async def test_a_video_stored_before_names_were_owned_is_not_overwritten_by_other_work(
    images: Path, tmp_path: Path
) -> None:
    """Without name objects (an older destination) a stored video is its recorded work's: others get their own file."""
    out = tmp_path / "out"
    first_rows = _reused_id_rows(images, "Boats at dawn", "first.csv")
    later_rows = _reused_id_rows(images, "Boats at dusk", "later.csv")
    with emulator() as emu:
        (first,) = await _run(emu, out, first_rows, run="run-1")
        shutil.rmtree(out / "names", ignore_errors=True)
        (later,) = await _run(emu, out, later_rows, run="run-2")
        assert later.video_uri != first.video_uri
        assert _sha256(out / (first.video_uri or "")) == first.video_sha256
        # The first work redone (its video damaged) goes back under its own name: its record says so.
        video = out / (first.video_uri or "")
        video.write_bytes(bytes(len(video.read_bytes())))
        shutil.rmtree(out / "names", ignore_errors=True)
        (redone,) = await _run(emu, out, first_rows, run="run-3")
        assert emu.created() == 2
    assert (redone.status, redone.video_uri) == ("completed", "videos/harbour.mp4")
    assert _sha256(video) == first.video_sha256


def test_a_destination_hashes_an_object_as_a_stream(tmp_path: Path, s3_client: Any, bucket: str) -> None:
    """Folder and S3 both give an object's SHA-256 without holding it, and None for a missing one."""
    payload = os.urandom(3 * 1024 * 1024 + 17)
    for dest in (LocalDestination(tmp_path / "out"), S3Destination(s3_client, bucket, "p")):
        dest.put_bytes("videos/x.mp4", payload, "video/mp4")
        assert dest.sha256("videos/x.mp4") == hashlib.sha256(payload).hexdigest()
        assert dest.sha256("videos/missing.mp4") is None


async def test_a_destination_made_read_only_mid_run_fails_its_rows_retryably_and_never_breaks_the_batch(
    images: Path, tmp_path: Path
) -> None:
    """Made read-only once every job is made: each row fails `storage`, retryably; writable again, a rerun collects."""
    rows = make_rows(images, 4)
    with small_disk(tmp_path / "disk") as disk, emulator(generation_seconds=1.5, generation_jitter=0.0) as emu:
        out = disk / "out"

        async def read_only_once_all_are_made() -> None:
            while (await asyncio.to_thread(emu.stats))["creates"] < len(rows):
                await asyncio.sleep(0.05)
            await asyncio.to_thread(remount, disk, "ro")

        watcher = asyncio.create_task(read_only_once_all_are_made())
        try:
            first = await _run(emu, out, rows, run="run-1")
        finally:
            await watcher
            remount(disk, "rw")
        assert [(o.status, o.error_kind, o.retryable) for o in first] == [("failed", "storage", True)] * len(rows)
        assert all("Read-only file system" in (o.error_message or "") for o in first)
        # Its claims could not be given back on a read-only disk: they lapse a minute after
        # its last heartbeat (tests/test_row_claims.py); gone now, to keep this test short.
        shutil.rmtree(out / "claims")
        again = await _run(emu, out, rows, run="run-2")
        assert emu.created() == len(rows), "the paid jobs were collected, not made again"
    assert [o.status for o in again] == ["completed"] * len(rows)
    assert [o.generation_id for o in again] == [o.generation_id for o in first]
