"""Creates whose answer was lost are settled from the provider's usage logs: re-attached, or sent again, never twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from i2v.api.models import get_model
from i2v.api.usage_logs import LogPage
from i2v.engine.journal import Entry
from i2v.engine.unknown_creates import Found, NoJob, UnknownCreates, Unresolvable
from i2v.errors import AuthError
from i2v.storage.local import LocalDestination
from tests.emulated import emulator
from tests.engines import draw_images, engine_on, journal_intent, make_rows

pytestmark = pytest.mark.anyio

GRACE_S = 4.0


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return draw_images(tmp_path)


async def test_a_create_whose_answer_was_lost_after_its_job_was_made_is_re_attached(
    images: Path, tmp_path: Path
) -> None:
    """A 500 after the job was made: the logs list the create, the row collects that job's video, pays once."""
    rows = make_rows(images, 3)
    with emulator(logs_delay_seconds=0.5) as emu:
        emu.fault("create", 500, after_create=True)
        async with engine_on(emu, LocalDestination(tmp_path / "out"), unknown_grace_s=GRACE_S) as engine:
            outcomes = await engine.run_batch(rows)
        stats = emu.stats()
    assert [o.status for o in outcomes] == ["completed"] * 3
    assert stats["creates"] == 3, "the lost create was not sent again"
    assert stats["billed_twice"] == 0
    assert all(o.client_request_id and o.client_request_id.startswith(f"i2v-{o.row_key}-") for o in outcomes)


async def test_a_create_that_failed_before_making_a_job_is_sent_again(images: Path, tmp_path: Path) -> None:
    """A 502 that made no job: the logs list the create as failed, at no cost, so it is sent again and completes."""
    rows = make_rows(images, 2)
    with emulator(logs_delay_seconds=0.5) as emu:
        emu.fault("create", 502)
        async with engine_on(emu, LocalDestination(tmp_path / "out"), unknown_grace_s=GRACE_S) as engine:
            outcomes = await engine.run_batch(rows)
        stats = emu.stats()
        created = emu.created()
    assert [o.status for o in outcomes] == ["completed"] * 2
    assert created == 2
    assert stats["billed_twice"] == 0


async def test_a_killed_runs_create_that_reached_the_provider_is_found_and_re_attached(
    images: Path, tmp_path: Path
) -> None:
    """A run killed between sending a create and its answer: the next run finds the job by its client id."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(logs_delay_seconds=0.2) as emu:
        entry = await journal_intent(dest, row, sent_ago_s=1.0)
        api = emu.api()
        route = get_model(row.model).route(row.route)
        made = await api.create(route, row.request_body(), client_request_id=entry.client_request_id)
        await api.aclose()
        async with engine_on(emu, dest, run="next", unknown_grace_s=GRACE_S) as engine:
            (outcome,) = await engine.run_batch([row])
        assert emu.created() == 1, "the killed run's job was collected, not paid for again"
    assert (outcome.status, outcome.generation_id) == ("completed", made.id)


async def test_a_killed_runs_create_that_never_arrived_is_sent_again_after_the_grace_period(
    images: Path, tmp_path: Path
) -> None:
    """An intent the logs never list: once the grace period has passed since it was sent, the create is sent again."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(logs_delay_seconds=0.2) as emu:
        await journal_intent(dest, row, sent_ago_s=1.0)
        started = time.monotonic()
        async with engine_on(emu, dest, run="next", unknown_grace_s=GRACE_S) as engine:
            (outcome,) = await engine.run_batch([row])
        waited = time.monotonic() - started
        assert emu.created() == 1
        assert emu.stats()["billed_twice"] == 0
    assert outcome.status == "completed"
    assert waited >= GRACE_S - 1.0 - 0.5, "it waited out the rest of the grace period first"


class _Refusing:
    """Usage logs the key may not read."""

    def __init__(self) -> None:
        self.calls = 0

    async def logs(self, *, start: float, end: float, model: str | None, offset: int, limit: int) -> LogPage:
        self.calls += 1
        raise AuthError("GET /v2/logs: HTTP 401: unauthorized", status=401)


async def test_logs_the_key_may_not_read_leave_the_create_unknown_and_are_asked_once() -> None:
    """Where the logs answer 401, resolution says so and stops asking: rows keep today's submit_unknown."""
    logs = _Refusing()
    unknown = UnknownCreates(logs, grace_s=1.0)
    entry = Entry("sending", "k1", "alibaba/wan2.5-i2v-preview", "universal", time.time(), client_request_id="i2v-k1-1")
    first = await unknown.resolve(entry)
    second = await unknown.resolve(Entry("sending", "k2", "alibaba/wan2.5-i2v-preview", "universal", time.time()))
    assert isinstance(first, Unresolvable)
    assert isinstance(second, Unresolvable)
    assert "may not read the usage logs" in first.reason
    assert logs.calls == 1


async def test_resolutions_are_found_or_no_job_from_the_rows_the_logs_list() -> None:
    """A succeeded row names the job; a failed row means no job; either is read once for many entries."""
    from i2v.api.usage_logs import LogRow

    now = time.time()

    class Listed:
        calls = 0

        async def logs(self, *, start: float, end: float, model: str | None, offset: int, limit: int) -> LogPage:
            Listed.calls += 1
            rows = [
                LogRow("i2v-a-1", "gen-a", "succeeded", "alibaba/wan2.5-i2v-preview", now),
                LogRow("i2v-b-1", "inf-b", "failed", "alibaba/wan2.5-i2v-preview", now),
            ]
            return LogPage(rows, has_more=False)

    unknown = UnknownCreates(Listed(), grace_s=60.0)
    model = "alibaba/wan2.5-i2v-preview"
    found = await unknown.resolve(Entry("sending", "a", model, "universal", now, client_request_id="i2v-a-1"))
    failed = await unknown.resolve(Entry("sending", "b", model, "universal", now, client_request_id="i2v-b-1"))
    assert found == Found("gen-a", found.row)  # type: ignore[union-attr]
    assert isinstance(failed, NoJob)
    assert Listed.calls == 1, "the second entry was answered from the rows already read"
