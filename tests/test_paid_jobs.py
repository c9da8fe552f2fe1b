"""A paid job is never abandoned while the provider still knows it: refused URLs, late re-attaches, lost records."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from i2v.api.models import get_model
from i2v.inputs.row import Row
from i2v.storage.local import LocalDestination
from tests.emulated import Emulator, emulator
from tests.engines import draw_images, engine_on, journal_intent, make_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return draw_images(tmp_path)


async def test_a_refused_download_asks_the_generation_again_and_pays_nothing_more(images: Path, tmp_path: Path) -> None:
    """A 403, 404 or 410 on the video URL: the generation is fetched again for its URL; the row completes."""
    rows = make_rows(images, 3)
    with emulator() as emu:
        async with engine_on(emu, LocalDestination(tmp_path / "out")) as engine:
            outcomes = []
            for row, status in zip(rows, (403, 404, 410), strict=True):
                emu.fault("download", status, count=1)
                outcomes += await engine.run_batch([row])
        assert emu.created() == 3
        assert emu.stats()["downloads_served"] == 3
    assert [o.status for o in outcomes] == ["completed"] * 3


async def _journaled_job(emu: Emulator, dest: LocalDestination, row: Row, *, sent_ago_s: float) -> str:
    """A job created for ``row`` and journaled as a run that has since died left it; its id."""
    api = emu.api()
    generation = await api.create(get_model(row.model).route(row.route), row.request_body())
    await api.aclose()
    await journal_intent(dest, row, sent_ago_s=sent_ago_s, generation_id=generation.id)
    return generation.id


async def test_a_job_re_attached_late_gets_a_fresh_deadline(images: Path, tmp_path: Path) -> None:
    """Re-attached 31 s after its create with a 10 s timeout, a 2-second job is waited for, not timed out."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(generation_seconds=2.0) as emu:
        job = await _journaled_job(emu, dest, row, sent_ago_s=31.0)
        async with engine_on(emu, dest, run="next", job_timeout_s=10.0) as engine:
            (outcome,) = await engine.run_batch([row])
        assert emu.created() == 1
    assert (outcome.status, outcome.generation_id) == ("completed", job), outcome.error_message


async def test_a_job_older_than_four_timeouts_is_not_waited_for_again(images: Path, tmp_path: Path) -> None:
    """The fresh wait is bounded: a job created more than four timeouts ago that still runs fails as timed out."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(generation_seconds=30.0) as emu:
        await _journaled_job(emu, dest, row, sent_ago_s=20.0)
        async with engine_on(emu, dest, run="next", job_timeout_s=4.0) as engine:
            (outcome,) = await engine.run_batch([row])
        assert emu.created() == 1
    assert (outcome.status, outcome.error_kind) == ("failed", "timeout")


async def test_a_video_stored_before_its_record_was_written_is_kept_not_paid_again(
    images: Path, tmp_path: Path
) -> None:
    """A run that stored a video and died before recording it: the next one keeps the video, its URL long expired."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(url_ttl_seconds=1.0) as emu:
        async with engine_on(emu, dest, run="first") as engine:
            (first,) = await engine.run_batch([row])
        assert first.status == "completed"
        # The record is lost (the crash came between the video and its record).
        dest.delete(f"records/{row.key}.json")
        time.sleep(1.5)  # the video URL has expired by now
        async with engine_on(emu, dest, run="second") as engine:
            (second,) = await engine.run_batch([row])
        assert emu.created() == 1, "no second job"
        assert emu.stats()["downloads_served"] == 1, "no second download"
    assert second.status == "completed"
    assert second.video_sha256 == first.video_sha256
