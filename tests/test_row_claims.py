"""Row claims: two runs on one destination at once pay for each row once; a dead run's rows are taken over."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from i2v.engine.claims import LEASE_S, Claimed, Held, RowClaims, claim_key, live_claims, owner_key
from i2v.storage.destination import Destination
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination
from tests.emulated import emulator
from tests.engines import draw_images, engine_on, journal_intent, make_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return draw_images(tmp_path)


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_of_two_owners_claims_a_row_and_the_other_is_told_who_holds_it(tmp_path: Path) -> None:
    """The first claim wins; a live owner's claim holds; after its lease the row is taken over with the next number."""
    dest = LocalDestination(tmp_path / "out")
    clock = Clock()
    first = RowClaims(dest, run="run-a", owner="a", clock=clock)
    second = RowClaims(dest, run="run-b", owner="b", clock=clock)
    first.beat()
    second.beat()
    assert first.claim("k1") == Claimed(1)
    held = second.claim("k1")
    assert isinstance(held, Held)
    assert (held.owner, held.run) == ("a", "run-a")
    assert first.claim("k1") == Claimed(1), "an owner's own claim is still its own"
    clock.now += LEASE_S + 1
    second.beat()
    assert second.claim("k1") == Claimed(2, took_over="a"), "a gone owner's row is taken over"
    first.beat()
    assert isinstance(first.claim("k1"), Held), "the old owner, back, finds the row taken"


def test_a_claim_given_back_can_be_claimed_anew_and_retire_gives_back_everything(tmp_path: Path) -> None:
    """Released claims leave nothing; retiring an owner removes its claims and its heartbeat."""
    dest = LocalDestination(tmp_path / "out")
    owner = RowClaims(dest, run="r", owner="o")
    owner.beat()
    assert owner.claim("k1") == Claimed(1)
    owner.release("k1")
    assert dest.list_sizes("claims/k1/") == {}
    assert owner.claim("k1") == Claimed(1)
    assert owner.claim("k2") == Claimed(1)
    owner.retire()
    assert dest.list_sizes("claims/") == {}


async def _two_runs(emu: Any, dest: Destination, rows: list[Any]) -> tuple[list[Any], list[Any]]:
    async def one(run: str) -> list[Any]:
        async with engine_on(emu, dest, run=run, max_in_flight=8) as engine:
            return await engine.run_batch(rows)

    first, second = await asyncio.gather(one("run-a"), one("run-b"))
    return first, second


async def _each_row_paid_once(images: Path, dest: Destination) -> None:
    rows = make_rows(images, 24)
    with emulator(generation_seconds=0.5) as emu:
        first, second = await _two_runs(emu, dest, rows)
        stats = emu.stats()
    assert stats["creates"] == 24, "each row created once over both runs"
    assert stats["billed_twice"] == 0
    for a, b in zip(first, second, strict=True):
        statuses = {a.status, b.status}
        assert "failed" not in statuses
        assert "completed" in statuses, "one run generated the row"
        kinds = {a.error_kind, b.error_kind} - {None}
        assert kinds <= {"already_done"}, f"the other run reports the first one's video: {kinds}"
    assert dest.list_sizes("claims/") == {}, "every claim given back"


async def test_two_runs_at_once_into_one_folder_pay_for_each_row_once(images: Path, tmp_path: Path) -> None:
    """Two runs of one input started together into one folder: every row created once, both report every row."""
    await _each_row_paid_once(images, LocalDestination(tmp_path / "out"))


async def test_two_runs_at_once_into_one_s3_prefix_pay_for_each_row_once(
    images: Path, s3_client: Any, bucket: str
) -> None:
    """The same on S3 (moto): claims are conditional writes, so exactly one run creates each row's job."""
    await _each_row_paid_once(images, S3Destination(s3_client, bucket, "claims-test"))


async def test_a_dead_runs_claim_is_taken_over_and_its_job_re_attached(images: Path, tmp_path: Path) -> None:
    """A run that died holding a claim and a journaled job: the next run takes the claim over and pays nothing."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(generation_seconds=0.3) as emu:
        generation = await emu.api().create(_route(row), row.request_body())
        await journal_intent(dest, row, sent_ago_s=1.0, generation_id=generation.id)
        dest.put_bytes(
            owner_key("dead-owner"),
            json.dumps({"owner": "dead-owner", "at": time.time() - 2 * LEASE_S}).encode(),
            "application/json",
        )
        dest.put_bytes(
            claim_key(row.key, 1), json.dumps({"owner": "dead-owner", "run": "dead"}).encode(), "application/json"
        )
        async with engine_on(emu, dest, run="next") as engine:
            (outcome,) = await engine.run_batch([row])
        assert emu.created() == 1, "the dead run's job was collected, not paid for again"
    assert outcome.status == "completed"
    assert outcome.generation_id == generation.id


async def test_a_live_runs_claim_makes_the_other_wait_for_its_outcome(images: Path, tmp_path: Path) -> None:
    """A row held by a live run is waited for: once that run records it, the waiter reports it, unpaid."""
    (row,) = make_rows(images, 1)
    dest = LocalDestination(tmp_path / "out")
    with emulator(generation_seconds=2.0) as emu:
        async with engine_on(emu, dest, run="first") as first, engine_on(emu, dest, run="second") as second:
            started = asyncio.ensure_future(first.run_batch([row]))
            while emu.created() == 0:
                await asyncio.sleep(0.05)
            (waited,) = await second.run_batch([row])
            (done,) = await started
        assert emu.created() == 1
    assert done.status == "completed"
    assert (waited.status, waited.error_kind) == ("skipped", "already_done")


def _route(row: Any) -> Any:
    from i2v.api.models import get_model

    return get_model(row.model).route(row.route)


def test_live_claims_name_the_rows_live_runs_hold_and_not_a_dead_runs(tmp_path: Path) -> None:
    """What `i2v status` reads: rows held by owners alive now, by run; not a gone owner's, not released ones."""
    dest = LocalDestination(tmp_path / "out")
    clock = Clock()
    alive = RowClaims(dest, run="run-a", owner="a", clock=clock)
    gone = RowClaims(dest, run="run-b", owner="b", clock=clock)
    gone.beat()
    assert gone.claim("k3") == Claimed(1)
    clock.now += LEASE_S + 1
    alive.beat()
    for key in ("k1", "k2", "k4"):
        assert alive.claim(key) == Claimed(1)
    alive.release("k4")
    assert live_claims(dest, now=clock.now) == {"k1": "run-a", "k2": "run-a"}
    assert alive.claim("k3") == Claimed(2, took_over="b")
    assert live_claims(dest, now=clock.now) == {"k1": "run-a", "k2": "run-a", "k3": "run-a"}
    assert live_claims(dest, now=clock.now + LEASE_S + 1) == {}, "once its owner is gone, nothing is held"
