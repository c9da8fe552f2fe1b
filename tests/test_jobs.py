"""Submitting and waiting, against the emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from i2v.api.client import VideoApi
from i2v.api.models import get_model
from i2v.api.settings import ApiSettings, Secret
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.jobs import job_class, still_live, submit, wait_for_video
from i2v.engine.journal import Journal, Submission
from i2v.engine.offload import Offload
from i2v.engine.pacing import PollPacer
from i2v.engine.retry import Backoff
from i2v.errors import GenerationFailed, GenerationTimeout, ServerError, SubmitUnknown, TransportError
from i2v.inputs.row import Row
from i2v.inputs.validation import read_rows
from i2v.storage.local import LocalDestination
from tests.emulated import Emulator, emulator

pytestmark = pytest.mark.anyio

QUICK = Backoff(attempts=4, initial_s=0.05, max_s=0.2)
FAST_POLLS = PollPacer(0.1)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulator() as running:
        yield running


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    offload = Offload(2)
    yield Journal(LocalDestination(tmp_path / "dest"), offload)
    offload.close()


def _row(tmp_path: Path, prompt: str = "Waves roll onto the beach") -> Row:
    Image.new("RGB", (64, 36), (30, 90, 200)).save(tmp_path / "img.png")
    csv = tmp_path / "rows.csv"
    csv.write_text(f"image_url,prompt,duration,resolution\nimg.png,{prompt},5,480p\n")
    (row,) = read_rows(csv).rows
    return row


def _mock_api(statuses: list[str]) -> VideoApi:
    answers = iter(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "g", "status": next(answers)})

    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler))
    return VideoApi(http, Secret("k"))


async def test_submit_journals_the_generation_before_returning(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """The generation id is durable in the destination as soon as submit returns; its slot is held."""
    row = _row(tmp_path)
    limiter = AdmissionLimiter(4)
    submission = await submit(emu.api(), row, journal, limiter, run="r1", backoff=QUICK)
    entry = await journal.load(row.key)
    assert entry is not None
    assert entry.state == "submitted"
    assert entry.submission() == Submission(
        row_key=row.key,
        model=row.model,
        route="universal",
        generation_id=submission.generation_id,
        submitted_at=submission.submitted_at,
        attempts=1,
        run="r1",
        client_request_id=f"i2v-{row.key}-1",
        sends=1,
    )
    assert (limiter.stats().in_flight, limiter.stats().accepted) == (1, 1)
    assert emu.stats()["creates"] == 1


async def test_429_on_create_gives_the_slot_back_and_waits_for_retry_after(
    emu: Emulator, journal: Journal, tmp_path: Path
) -> None:
    """A 429 creates nothing: the slot is returned, the target shrinks, and the create is resent after Retry-After."""
    emu.fault("create", 429, retry_after=1)
    limiter = AdmissionLimiter(4)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    submission = await submit(emu.api(), _row(tmp_path), journal, limiter, backoff=QUICK, sleep=sleep)
    assert submission.attempts == 2
    assert slept
    assert slept[0] >= 1.0
    assert limiter.stats().rejections == 1
    assert limiter.stats().in_flight == 1
    stats = emu.stats()
    assert stats["creates"] == 2
    assert stats["responses"]["429"] == 1
    assert emu.created() == 1


async def test_lost_create_response_is_unknown_and_never_resent(
    emu: Emulator, journal: Journal, tmp_path: Path
) -> None:
    """A 502 after the job was made leaves the outcome unknown: no resend, the intent stays journaled."""
    emu.fault("create", 502, after_create=True)
    row = _row(tmp_path)
    limiter = AdmissionLimiter(4)
    with pytest.raises(SubmitUnknown) as info:
        await submit(emu.api(), row, journal, limiter, backoff=QUICK)
    assert isinstance(info.value.__cause__, ServerError)
    entry = await journal.load(row.key)
    assert entry is not None
    assert entry.state == "sending"
    assert entry.generation_id is None
    assert limiter.stats().in_flight == 0, "the slot is released"
    assert emu.stats()["creates"] == 1
    assert emu.created() == 1


async def test_503_on_create_is_resent(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """503 means the service refused the request before any job existed: resending is safe."""
    emu.fault("create", 503)
    submission = await submit(emu.api(), _row(tmp_path), journal, AdmissionLimiter(4), backoff=QUICK)
    assert submission.attempts == 2
    assert emu.created() == 1


async def test_refused_connection_is_resent_then_fails_without_an_intent(journal: Journal, tmp_path: Path) -> None:
    """Nothing listening: every attempt certainly made no job, so the journal keeps no intent and the slot is free."""
    settings = ApiSettings(api_key=Secret("k"), base_url="http://127.0.0.1:9", timeout_s=2)
    from i2v.api.client import make_http_client

    api = VideoApi(make_http_client(settings), Secret("k"))
    row = _row(tmp_path)
    limiter = AdmissionLimiter(4)
    with pytest.raises(TransportError) as info:
        await submit(api, row, journal, limiter, backoff=QUICK)
    assert info.value.sent is False
    assert info.value.attempts == QUICK.attempts  # type: ignore[attr-defined]
    entry = await journal.load(row.key)
    assert entry is not None
    assert (entry.state, entry.generation_id) == ("withdrawn", None), "no job, and the creates sent are counted"
    assert entry.sends == QUICK.attempts
    assert limiter.stats().in_flight == 0


async def test_still_live_tells_running_jobs_from_unknown_ones(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A journaled job the API still runs can be re-attached; an id it does not know cannot."""
    api = emu.api()
    submission = await submit(api, _row(tmp_path), journal, AdmissionLimiter(4), backoff=QUICK)
    assert await still_live(api, submission, backoff=QUICK)
    gone = Submission(submission.row_key, submission.model, "universal", "no-such-generation", time.time(), 1)
    assert not await still_live(api, gone, backoff=QUICK)


async def test_wait_returns_the_video_and_absorbs_a_failed_poll(
    emu: Emulator, journal: Journal, tmp_path: Path
) -> None:
    """Polling survives a 503 on one fetch and returns the video URL when the job completes."""
    api = emu.api()
    row = _row(tmp_path)
    submission = await submit(api, row, journal, AdmissionLimiter(4), backoff=QUICK)
    emu.fault("fetch", 503)
    finished = await wait_for_video(
        api, submission, PollPacer(0.1), job=job_class(row), deadline=time.time() + 30, backoff=QUICK
    )
    assert finished.video_url.startswith(emu.base_url)
    assert finished.polls >= 2, "the failed poll and the one that saw the video"
    assert finished.credits_used
    assert emu.stats()["responses"]["503"] == 1


async def test_wait_raises_after_too_many_consecutive_errors(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """Persistent 5xx on fetch surface as a transient error for the batch's retry policy."""
    api = emu.api()
    row = _row(tmp_path)
    submission = await submit(api, row, journal, AdmissionLimiter(4), backoff=QUICK)
    emu.fault("fetch", 500, count=3)
    with pytest.raises(ServerError) as info:
        await wait_for_video(
            api,
            submission,
            PollPacer(0.1),
            job=job_class(row),
            deadline=time.time() + 30,
            max_consecutive_errors=3,
            backoff=QUICK,
        )
    assert info.value.polls == 3  # type: ignore[attr-defined]


async def test_job_error_is_reported_with_its_message(emu: Emulator, journal: Journal, tmp_path: Path) -> None:
    """A job that ends in 'error' raises GenerationFailed with the API's name and message."""
    api = emu.api()
    row = _row(tmp_path, prompt="A forbidden dance")
    submission = await submit(api, row, journal, AdmissionLimiter(4), backoff=QUICK)
    with pytest.raises(GenerationFailed) as info:
        await wait_for_video(api, submission, PollPacer(0.1), job=job_class(row), deadline=time.time() + 30)
    assert "ContentModerationError" in str(info.value)
    assert info.value.retryable is False
    assert info.value.generation_id == submission.generation_id


async def test_reattached_job_past_its_deadline_is_still_asked_once(
    emu: Emulator, journal: Journal, tmp_path: Path
) -> None:
    """A re-attached job whose deadline passed during a crash is polled at once: if it is done, it counts."""
    from dataclasses import replace

    api = emu.api()
    row = _row(tmp_path)
    submission = await submit(api, row, journal, AdmissionLimiter(4), backoff=QUICK)
    await asyncio.sleep(1.0)
    again = replace(submission, reattached=True)
    finished = await wait_for_video(api, again, PollPacer(10), job=job_class(row), deadline=submission.submitted_at)
    assert finished.polls == 1


async def test_deadline_turns_a_slow_job_into_a_timeout(tmp_path: Path, journal: Journal) -> None:
    """A job still generating at its deadline fails the row clearly; the deadline is absolute."""
    with emulator(generation_seconds=30) as emu:
        api = emu.api()
        row = _row(tmp_path)
        submission = await submit(api, row, journal, AdmissionLimiter(4), backoff=QUICK)
        with pytest.raises(GenerationTimeout, match="not finished after 1s; last status 'generating'"):
            await wait_for_video(
                api, submission, PollPacer(0.2), job=job_class(row), deadline=submission.submitted_at + 1
            )


async def test_unknown_status_is_not_success() -> None:
    """A status the contract does not list is polled until the deadline, then named in the failure."""
    now = [1000.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    api = _mock_api(["paused"] * 20)
    submission = Submission("key", "alibaba/wan2.5-i2v-preview", "universal", "g", 1000.0, 1)
    with pytest.raises(GenerationTimeout, match="last status 'paused'") as info:
        await wait_for_video(
            api, submission, PollPacer(10), job="c", deadline=1060.0, sleep=sleep, clock=lambda: now[0]
        )
    assert info.value.polls == 6, "one poll every 10 s from 10 s to 60 s, the last at the deadline"


@pytest.mark.parametrize("word", ["failed", "cancelled", "canceled", "expired", "rejected"])
async def test_words_that_end_a_job_fail_it_at_once(word: str) -> None:
    """A terminal status other than 'error' fails the row on the poll that sees it, not at the deadline."""
    api = _mock_api(["queued", "processing", word])

    async def sleep(seconds: float) -> None:
        return None

    submission = Submission("key", "alibaba/wan2.5-i2v-preview", "universal", "g", time.time(), 1)
    with pytest.raises(GenerationFailed, match=f"ended in status '{word}'") as info:
        await wait_for_video(api, submission, PollPacer(1), job="c", deadline=time.time() + 3600, sleep=sleep)
    assert info.value.polls == 3


async def test_every_running_status_keeps_polling() -> None:
    """queued, waiting, active, generating and processing all mean 'not yet'."""
    api = _mock_api(["queued", "waiting", "active", "generating", "processing", "completed"])

    async def sleep(seconds: float) -> None:
        return None

    def handler_with_video(statuses: list[str]) -> VideoApi:
        answers = iter(statuses)

        def handler(request: httpx.Request) -> httpx.Response:
            status = next(answers)
            video = {"url": "https://cdn.test/v.mp4"} if status == "completed" else None
            return httpx.Response(200, json={"id": "g", "status": status, "video": video})

        return VideoApi(
            httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler)), Secret("k")
        )

    api = handler_with_video(["queued", "waiting", "active", "generating", "processing", "completed"])
    submission = Submission("key", "alibaba/wan2.5-i2v-preview", "universal", "g", time.time(), 1)
    finished = await wait_for_video(api, submission, PollPacer(1), job="c", deadline=time.time() + 3600, sleep=sleep)
    assert finished.polls == 6
    assert finished.video_url == "https://cdn.test/v.mp4"


def _api_behind_a_busy_connection() -> tuple[VideoApi, asyncio.Event]:
    """An API with one connection, which a poll of generation ``busy`` holds until the event is set.

    Generation ``g`` is generating at its first poll and completed from the second on.
    """
    release = asyncio.Event()
    polls_of_g = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal polls_of_g
        if request.url.params.get("generation_id") == "busy":
            await release.wait()
        if request.method == "POST":
            return httpx.Response(200, json={"id": "g", "status": "queued"})
        if request.url.params.get("generation_id") == "g":
            polls_of_g += 1
            if polls_of_g == 1:
                return httpx.Response(200, json={"id": "g", "status": "generating"})
        return httpx.Response(200, json={"id": "g", "status": "completed", "video": {"url": "https://cdn.test/v.mp4"}})

    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler))
    return VideoApi(http, Secret("k"), concurrency=1), release


async def _hold_then_release(api: VideoApi, release: asyncio.Event, seconds: float) -> asyncio.Future[object]:
    route = get_model("alibaba/wan2.5-i2v-preview").route()
    busy: asyncio.Future[object] = asyncio.ensure_future(api.fetch(route, "busy"))
    await asyncio.sleep(0.01)
    asyncio.get_running_loop().call_later(seconds, release.set)
    return busy


async def test_a_jobs_clock_starts_when_its_create_leaves_not_while_it_waits_for_a_connection(
    journal: Journal, tmp_path: Path
) -> None:
    """A create that queued behind a busy connection is timed from when it was sent: its polls are not early."""
    api, release = _api_behind_a_busy_connection()
    busy = await _hold_then_release(api, release, 0.3)
    before = time.time()
    submission = await submit(api, _row(tmp_path), journal, AdmissionLimiter(4), backoff=QUICK)
    await busy
    assert submission.submitted_at - before >= 0.25


async def test_the_pacer_learns_from_when_a_poll_was_sent_not_from_when_it_queued() -> None:
    """A poll that waited for a connection teaches the time it was sent: the job is not taken as faster than it was."""
    api, release = _api_behind_a_busy_connection()
    busy = await _hold_then_release(api, release, 0.3)
    pacer = PollPacer(0.05)
    submission = Submission("key", "alibaba/wan2.5-i2v-preview", "universal", "g", time.time(), 1)
    finished = await wait_for_video(api, submission, pacer, job="c", deadline=time.time() + 60)
    await busy
    assert finished.polls == 2
    expected = pacer.expected("c")
    assert expected is not None
    # Seen running by a poll due at 0.05 s but sent at ~0.3 s, done at the next one 0.05 s
    # later: the job took more than 0.3 s, not the ~0.2 s between the due time and the end.
    assert expected >= 0.28
