"""Submitting and waiting, against the emulator over real HTTP on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from i2v.api import VideoApi
from i2v.errors import GenerationFailed, GenerationTimeout, ServerError
from i2v.jobs import submit, wait_for_video
from i2v.journal import Journal, Submission
from i2v.retry import Backoff
from i2v.rows import Row, read_rows
from i2v.settings import Secret
from i2v.storage import LocalDestination
from tests.emulated import Emulator, emulator

QUICK = Backoff(attempts=4, initial_s=0.05, max_s=0.2)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulator() as running:
        yield running


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(LocalDestination(tmp_path / "dest"))


def _row(tmp_path: Path, prompt: str = "Waves roll onto the beach") -> Row:
    Image.new("RGB", (64, 36), (30, 90, 200)).save(tmp_path / "img.png")
    csv = tmp_path / "rows.csv"
    csv.write_text(f"image_url,prompt,duration,resolution\nimg.png,{prompt},5,480p\n")
    (row,) = read_rows(csv).rows
    return row


def _recording_sleep(log: list[float]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        log.append(seconds)
        time.sleep(seconds)

    return sleep


def test_submit_journals_the_generation_before_returning(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """The generation id is durable in the destination as soon as submit returns."""
    row = _row(tmp_path)
    submission = submit(emu.api(), row, journal, backoff=QUICK)
    assert journal.load(row.key) == Submission(
        row_key=row.key,
        model=row.model,
        route="universal",
        generation_id=submission.generation_id,
        submitted_at=submission.submitted_at,
        attempts=1,
    )
    assert emu.stats()["creates"] == 1


def test_429_on_create_waits_for_retry_after_then_succeeds(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A 429 creates nothing, so the create is resent, no sooner than Retry-After."""
    emu.fault("create", 429, retry_after=1)
    slept: list[float] = []
    submission = submit(emu.api(), _row(tmp_path), journal, backoff=QUICK, sleep=_recording_sleep(slept))
    assert submission.attempts == 2
    assert slept
    assert slept[0] >= 1.0
    stats = emu.stats()
    assert stats["creates"] == 2
    assert stats["responses"]["429"] == 1
    assert emu.created() == 1


def test_lost_create_response_is_not_resent(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A 502 after the job was created leaves the outcome unknown: no blind resend, no second bill."""
    emu.fault("create", 502, after_create=True)
    with pytest.raises(ServerError) as info:
        submit(emu.api(), _row(tmp_path), journal, backoff=QUICK)
    assert info.value.attempts == 1  # type: ignore[attr-defined]
    assert emu.stats()["creates"] == 1
    assert emu.created() == 1


def test_503_on_create_is_resent(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """503 means the request was refused before any job existed: resending is safe."""
    emu.fault("create", 503)
    submission = submit(emu.api(), _row(tmp_path), journal, backoff=QUICK)
    assert submission.attempts == 2
    assert emu.created() == 1


def test_rerun_reattaches_to_a_live_generation(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A journaled, still-running generation is re-used: no second create."""
    row = _row(tmp_path)
    first = submit(emu.api(), row, journal, backoff=QUICK)
    again = submit(emu.api(), row, journal, backoff=QUICK)
    assert again.reattached
    assert again.generation_id == first.generation_id
    assert emu.stats()["creates"] == 1


def test_unknown_journaled_generation_is_replaced(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A journaled id the API does not know (404) leads to a fresh create."""
    row = _row(tmp_path)
    journal.save(Submission(row.key, row.model, "universal", "no-such-generation", time.time(), 1))
    fresh = submit(emu.api(), row, journal, backoff=QUICK)
    assert not fresh.reattached
    assert fresh.generation_id != "no-such-generation"
    assert emu.stats()["creates"] == 1


def test_wait_returns_the_video_and_absorbs_a_failed_poll(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """Polling survives a 503 on one fetch and returns the video URL when the job completes."""
    api = emu.api()
    submission = submit(api, _row(tmp_path), journal, backoff=QUICK)
    emu.fault("fetch", 503)
    finished = wait_for_video(api, submission, deadline=time.time() + 30, interval_s=0.1, backoff=QUICK)
    assert finished.video_url.startswith(emu.base_url)
    assert finished.polls >= 3
    assert finished.credits_used
    assert finished.credits_used > 0
    assert emu.stats()["responses"]["503"] == 1


def test_wait_raises_after_too_many_consecutive_errors(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """Persistent 5xx on fetch surface as a transient error for the task's retry policy."""
    api = emu.api()
    submission = submit(api, _row(tmp_path), journal, backoff=QUICK)
    emu.fault("fetch", 500, count=3)
    with pytest.raises(ServerError) as info:
        wait_for_video(
            api, submission, deadline=time.time() + 30, interval_s=0.1, max_consecutive_errors=3, backoff=QUICK
        )
    assert info.value.polls == 3  # type: ignore[attr-defined]


def test_job_error_is_reported_with_its_message(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A job that ends in 'error' raises GenerationFailed with the API's name and message."""
    api = emu.api()
    submission = submit(api, _row(tmp_path, prompt="A forbidden dance"), journal, backoff=QUICK)
    with pytest.raises(GenerationFailed) as info:
        wait_for_video(api, submission, deadline=time.time() + 30, interval_s=0.1)
    assert "ContentModerationError" in str(info.value)
    assert info.value.retryable is False
    assert info.value.generation_id == submission.generation_id


def test_job_past_its_deadline_is_still_asked_once(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A re-attached job whose deadline passed during a crash is polled once: if it is done, it counts."""
    api = emu.api()
    submission = submit(api, _row(tmp_path), journal, backoff=QUICK)
    time.sleep(1.0)
    finished = wait_for_video(api, submission, deadline=submission.submitted_at + 0.5, interval_s=0.1)
    assert finished.polls == 1


def test_deadline_turns_a_slow_job_into_a_timeout(tmp_path: Path) -> None:
    """A job still generating at its deadline fails the row clearly; the deadline is absolute."""
    with emulator(generation_seconds=30) as emu:
        api = emu.api()
        submission = submit(api, _row(tmp_path), Journal(LocalDestination(tmp_path / "d")), backoff=QUICK)
        with pytest.raises(GenerationTimeout, match="not finished after 1s; last status 'generating'"):
            wait_for_video(api, submission, deadline=submission.submitted_at + 1, interval_s=0.2)


def test_unknown_status_is_not_success() -> None:
    """A status the contract does not list is polled until the deadline, then named in the failure."""
    now = [1000.0]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "g", "status": "paused"})

    api = VideoApi(httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(handler)), Secret("k"))
    submission = Submission("key", "alibaba/wan2.5-i2v-preview", "universal", "g", 1000.0, 1)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(GenerationTimeout, match="last status 'paused'") as info:
        wait_for_video(api, submission, deadline=1060.0, interval_s=10, sleep=sleep, clock=lambda: now[0])
    assert info.value.polls == 7, "one poll every 10 s from 0 s to 60 s, the last at the deadline"
