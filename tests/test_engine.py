"""The engine against the emulator over real HTTP: admission, pacing, retries, re-attach, duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

import i2v.engine.runner as engine_module
from i2v.engine.journal import Journal, Submission
from i2v.engine.offload import Offload
from i2v.engine.retry import Backoff
from i2v.engine.runner import Engine
from i2v.engine.spec import RowsUnfinished
from i2v.inputs.row import Row
from i2v.storage.local import LocalDestination
from tests.emulated import Emulator, emulator
from tests.engines import draw_images, engine_on, make_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return draw_images(tmp_path)


def _rows(folder: Path, count: int, *, prompt: str = "Scene {i} of the harbour at dawn") -> list[Row]:
    return make_rows(folder, count, prompt=prompt)


def _engine(
    emu: Emulator, dest: Path, *, max_in_flight: int = 8, run: str = "run-1", **options: Any
) -> AbstractAsyncContextManager[Engine]:
    return engine_on(emu, LocalDestination(dest), max_in_flight=max_in_flight, run=run, **options)


@pytest.fixture
def busy() -> Iterator[Emulator]:
    """A provider with four slots that answers 429 to a fifth job."""
    with emulator(max_concurrent=4, max_pending=4, generation_seconds=0.3, generation_jitter=0.3) as emu:
        yield emu


async def test_429_pressure_never_fails_a_row(busy: Emulator, images: Path, tmp_path: Path) -> None:
    """Told 16 in flight against a provider of 4, 40 rows all complete, never more than 4 jobs at once, few 429s."""
    rows = _rows(images, 40)
    async with _engine(busy, tmp_path / "out", max_in_flight=16) as engine:
        outcomes = await engine.run_batch(rows)
        limiter = engine.limiter.stats()
    assert [o.status for o in outcomes] == ["completed"] * 40
    stats = busy.stats()
    assert stats["max_generating_seen"] <= 4
    assert busy.created() == 40, "every row paid once"
    rejected = stats["responses"].get("429", 0)
    assert rejected == limiter.rejections
    assert rejected <= 16, f"{rejected} 429s for 40 rows"
    assert stats["creates"] == 40 + rejected
    assert limiter.target <= 8


async def test_short_download_outage_is_absorbed_within_the_row(images: Path, tmp_path: Path) -> None:
    """A download that fails twice with 503 is tried again in the row and the row completes."""
    rows = _rows(images, 3)
    with emulator() as emu:
        emu.fault("download", 503, count=2)
        async with _engine(emu, tmp_path / "out") as engine:
            done = await engine.run_batch(rows, final=False)
        stats = emu.stats()
    assert [o.status for o in done] == ["completed"] * 3
    assert emu_created_once(stats, 3)


async def test_batch_retry_redoes_only_unfinished_rows_and_pays_for_none_twice(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows whose download failed transiently are left unrecorded; the retry re-attaches to their jobs only."""
    # One attempt per row, as if the in-row retries had run out: the batch is what retries.
    monkeypatch.setattr(engine_module, "STORAGE_BACKOFF", Backoff(attempts=1))
    rows = _rows(images, 6)
    with emulator() as emu:
        emu.fault("download", 503, count=2)
        async with _engine(emu, tmp_path / "out") as engine:
            with pytest.raises(RowsUnfinished) as info:
                await engine.run_batch(rows, final=False)
            unfinished = {o.row_index for o in info.value.outcomes}
            assert len(unfinished) == 2
            assert {o.error_kind for o in info.value.outcomes} == {"download"}
            served_before = emu.stats()["downloads_served"]
            again = await engine.run_batch(rows, final=False)
        stats = emu.stats()
    assert [o.status for o in again] == ["completed"] * 6
    assert emu_created_once(stats, 6)
    assert served_before == 4
    assert stats["downloads_served"] == 6, "only the two unfinished rows were downloaded again"
    redone = {o.row_index for o in again if o.generation_id and o.submit_attempts == 0}
    assert redone == unfinished, "the unfinished rows re-attached to their jobs"


def emu_created_once(stats: dict[str, object], rows: int) -> bool:
    """Every job the emulator made was made once per row."""
    jobs = stats["jobs"]
    assert isinstance(jobs, dict)
    return sum(jobs.values()) == rows == stats["creates"]


async def test_same_work_in_different_batches_is_generated_once(images: Path, tmp_path: Path) -> None:
    """Rows asking for identical work share one job, whichever batch they are in, and say whose result they share."""
    rows = _rows(images, 3, prompt="The same scene")
    assert len({row.key for row in rows[::2]}) == 1
    with emulator() as emu:
        async with _engine(emu, tmp_path / "out") as engine:
            first, second = await asyncio.gather(engine.run_batch(rows[:2]), engine.run_batch(rows[2:]))
        assert emu.created() == 2
    outcomes = first + second
    assert [o.status for o in outcomes] == ["completed", "completed", "skipped"]
    assert outcomes[2].error_kind == "duplicate"
    assert outcomes[2].video_uri == outcomes[0].video_uri


async def test_the_earliest_of_identical_rows_is_generated_even_when_a_later_one_starts_first(
    images: Path, tmp_path: Path
) -> None:
    """A later shard's row reaching the engine first waits for the earlier announced row; that one is generated."""
    rows = _rows(images, 3, prompt="The same scene")
    early, late = rows[0], rows[2]
    with emulator() as emu:
        async with _engine(emu, tmp_path / "out") as engine:
            engine.announce(rows)
            later = asyncio.create_task(engine.run_batch([late]))
            await asyncio.sleep(0.3)
            assert not later.done(), "the later row waits for the earlier one"
            assert emu.stats()["creates"] == 0
            first = await engine.run_batch([early, rows[1]])
            (second,) = await later
        assert emu.created() == 2
    assert first[0].status == "completed"
    assert (second.status, second.error_kind) == ("skipped", "duplicate")
    assert second.video_uri == first[0].video_uri
    assert (second.error_message or "").endswith(f"row {early.index}")


async def test_a_withdrawn_earlier_row_no_longer_holds_a_later_one(images: Path, tmp_path: Path) -> None:
    """When the earlier row's batch ends without it, the later identical row does the work itself."""
    rows = _rows(images, 3, prompt="The same scene")
    with emulator() as emu:
        async with _engine(emu, tmp_path / "out") as engine:
            engine.announce(rows)
            later = asyncio.create_task(engine.run_batch([rows[2]]))
            await asyncio.sleep(0.2)
            engine.withdraw(rows[:2])
            (outcome,) = await asyncio.wait_for(later, 30)
        assert emu.created() == 1
    assert outcome.status == "completed"


async def test_rerun_reattaches_to_live_jobs_and_skips_stored_videos(images: Path, tmp_path: Path) -> None:
    """A second run finds the first run's records and journal: no new job, no new download."""
    rows = _rows(images, 4)
    dest = tmp_path / "out"
    with emulator(generation_seconds=1.0) as emu:
        offload = Offload(2)
        journal = Journal(LocalDestination(dest), offload)
        # An earlier run started the first row's job, then died before polling it.
        async with _engine(emu, dest, run="run-0") as earlier:
            from i2v.engine.jobs import submit

            started = await submit(earlier.api, rows[0], journal, earlier.limiter, run="run-0")
            earlier.limiter.release(accepted=True)
        async with _engine(emu, dest, run="run-1") as engine:
            first = await engine.run_batch(rows)
        async with _engine(emu, dest, run="run-2") as engine:
            second = await engine.run_batch(rows)
        offload.close()
        stats = emu.stats()
    assert first[0].generation_id == started.generation_id
    assert first[0].submit_attempts == 0, "re-attached, not created"
    assert [o.status for o in first] == ["completed"] * 4
    assert [o.error_kind for o in second] == ["already_done"] * 4
    assert stats["creates"] == 4
    assert stats["downloads_served"] == 4


async def test_a_bad_key_stops_admission_and_every_row_still_gets_an_outcome(images: Path, tmp_path: Path) -> None:
    """The first 401 stops the run: rows not yet sent fail as not submitted, none is created."""
    rows = _rows(images, 10)
    with emulator() as emu:
        emu.api_key = "wrong-key"
        async with _engine(emu, tmp_path / "out", max_in_flight=1) as engine:
            outcomes = await engine.run_batch(rows)
            assert engine.stopped is not None
            assert engine.stopped.kind == "auth"
        stats = emu.stats()
    assert {o.error_kind for o in outcomes} == {"auth"}
    assert sum("not submitted" in (o.error_message or "") for o in outcomes) >= 8
    assert stats["creates"] <= 2
    assert sum(stats["jobs"].values()) == 0


def test_submission_entries_round_trip() -> None:
    """A journal entry names its job only once the create has answered."""
    from i2v.engine.journal import Entry

    sending = Entry("sending", "k", "m", "universal", 1.0, "r")
    assert sending.submission() is None
    done = Entry("submitted", "k", "m", "universal", 1.0, "r", "gen-1", 2)
    assert done.submission() == Submission("k", "m", "universal", "gen-1", 1.0, 2, "r")


async def test_a_failure_ratio_stops_new_submissions(images: Path, tmp_path: Path) -> None:
    """With every job failing and a 50 % limit, the run stops after twenty rows; the rest are skipped, unpaid."""
    rows = _rows(images, 60)
    with emulator(job_error_rate=1.0) as emu:
        async with _engine(emu, tmp_path / "out", max_in_flight=4, max_failure_ratio=0.5) as engine:
            outcomes = await engine.run_batch(rows)
            assert engine.stopped is not None
            assert "failure limit" in str(engine.stopped)
        created = emu.created()
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    assert len(failed) + len(skipped) == 60
    assert 20 <= len(failed) <= 24, "judged after twenty, plus the jobs already running"
    assert created == len(failed)
    assert {o.error_kind for o in skipped} == {"stopped"}
    assert all("failure limit" in (o.error_message or "") for o in skipped)


async def test_a_credit_budget_stops_before_it_is_passed(images: Path, tmp_path: Path) -> None:
    """A budget for three estimated jobs makes three; the other rows are skipped with the reason."""
    from i2v.api import prices

    rows = _rows(images, 8)
    each = prices.estimate(rows[0].model, rows[0].params).credits
    with emulator() as emu:
        async with _engine(emu, tmp_path / "out", max_in_flight=8, max_credits=3 * each + 1) as engine:
            outcomes = await engine.run_batch(rows)
        assert emu.created() == 3
    assert [o.status for o in outcomes].count("completed") == 3
    stopped = [o for o in outcomes if o.status == "skipped"]
    assert len(stopped) == 5
    assert all("spending limit" in (o.error_message or "") for o in stopped)


async def test_a_plain_rerun_retries_only_what_may_pass(images: Path, tmp_path: Path) -> None:
    """A moderation verdict is not retried; a failed download is, by its job, unpaid; --retry all retries both."""
    rows = _rows(images, 2, prompt="A forbidden gate number {i}")
    rows += _rows(images, 1, prompt="A calm lake")
    dest = tmp_path / "out"
    with emulator() as emu:
        # The URL answers 404 however often the generation is asked for a fresh one: the row fails, retryably.
        emu.fault("download", 404, count=3)
        async with _engine(emu, dest, run="r1") as engine:
            first = await engine.run_batch(rows)
        assert [o.error_kind for o in first].count("generation_failed") == 2
        assert [o.error_kind for o in first].count("download") == 1
        async with _engine(emu, dest, run="r2") as engine:
            second = await engine.run_batch(rows)
        assert emu.created() == 3, "the failed download's job is collected again, not paid for again"
        async with _engine(emu, dest, run="r3", retry="all") as engine:
            third = await engine.run_batch(rows)
        assert emu.created() == 5, "asked to, the moderation failures are tried again"
    by_prompt = {o.prompt: o for o in second}
    assert by_prompt["A calm lake"].status == "completed"
    blocked = [o for o in second if "forbidden" in o.prompt]
    assert {(o.status, o.error_kind) for o in blocked} == {("skipped", "generation_failed")}
    assert all((o.error_message or "").startswith("not retried") for o in blocked)
    assert {o.status for o in third if "forbidden" in o.prompt} == {"failed"}


async def test_rows_get_ready_for_a_slot_only_a_few_slots_ahead(images: Path, tmp_path: Path) -> None:
    """Of a large batch, at most two rows per slot have looked themselves up and built their request, unsent."""
    rows = _rows(images, 30)
    looked_up: list[int] = []
    most_ahead = 0
    with emulator(generation_seconds=0.2) as emu:
        async with _engine(emu, tmp_path / "out", max_in_flight=2) as engine:
            real_look_up = engine.resume._look_up

            def look_up(row: Row) -> Any:
                looked_up.append(row.index)
                return real_look_up(row)

            engine.resume._look_up = look_up  # type: ignore[method-assign]

            async def watch() -> None:
                nonlocal most_ahead
                while True:
                    most_ahead = max(most_ahead, len(looked_up) - emu.created())
                    await asyncio.sleep(0.005)

            watcher = asyncio.ensure_future(watch())
            try:
                outcomes = await engine.run_batch(rows)
            finally:
                watcher.cancel()
    assert [o.status for o in outcomes] == ["completed"] * 30
    assert sorted(looked_up) == list(range(30))
    assert 2 <= most_ahead <= 2 * 2, "two rows per slot, two slots"
