"""Conditional writes and inbox claims, on a local folder and on moto's S3 server over HTTP."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from i2v.storage import inbox_claims as claims
from i2v.storage.destination import Destination
from i2v.storage.inbox_claims import Claim
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination


@pytest.fixture(params=["local", "s3"])
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    """An inbox in a local folder, or under a prefix of a fresh bucket on moto's server."""
    if request.param == "local":
        return LocalDestination(tmp_path / "inbox")
    s3_client: Any = request.getfixturevalue("s3_client")
    bucket: str = request.getfixturevalue("bucket")
    return S3Destination(s3_client, bucket, "team/inbox")


def test_put_if_absent_writes_once_and_keeps_the_first(box: Destination) -> None:
    """The first conditional write wins; a second to the same key changes nothing."""
    assert box.put_if_absent("_i2v/claims/a.csv/0001.json", b"first", "application/json")
    assert not box.put_if_absent("_i2v/claims/a.csv/0001.json", b"second", "application/json")
    assert box.get_bytes("_i2v/claims/a.csv/0001.json") == b"first"


def test_put_if_absent_has_exactly_one_winner_among_racers(box: Destination) -> None:
    """Ten writers racing for one key: exactly one is told it wrote it, and its bytes are what is stored."""
    with ThreadPoolExecutor(10) as pool:
        results = list(
            pool.map(lambda i: box.put_if_absent("race.json", f"writer {i}".encode(), "text/plain"), range(10))
        )
    assert results.count(True) == 1
    assert box.get_bytes("race.json") == f"writer {results.index(True)}".encode()


def test_local_conditional_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    """Winning and losing writes both clean up their temporary file."""
    box = LocalDestination(tmp_path)
    box.put_if_absent("claims/x.json", b"1", "application/json")
    box.put_if_absent("claims/x.json", b"2", "application/json")
    assert os.listdir(tmp_path / "claims") == ["x.json"]


def test_waiting_lists_csv_files_not_done(box: Destination) -> None:
    """Dropped CSVs are waiting until marked done; the inbox's own objects, hidden and other files are not."""
    for key in ("a.csv", "sub/b.CSV", "notes.txt", ".partial.csv", "sub/.c.csv"):
        box.put_bytes(key, b"image_url,prompt\n", "text/csv")
    assert claims.waiting(box) == ["a.csv", "sub/b.CSV"]
    claim = claims.try_claim(box, "a.csv", 1, "run-1")
    assert claim is not None
    assert claims.waiting(box) == ["a.csv", "sub/b.CSV"], "a claim alone does not make a file done"
    claims.mark_done(box, claim, {"dest": "s3://out/a"})
    assert claims.waiting(box) == ["sub/b.CSV"]
    assert claims.is_done(box, "a.csv")
    done = claims.read_done(box, "a.csv")
    assert done is not None
    assert (done["owner"], done["number"], done["dest"]) == ("run-1", 1, "s3://out/a")


def test_a_file_is_taken_over_only_once_its_run_has_ended(box: Destination) -> None:
    """A live claim is left alone; after its run ends, one of two racing runs takes claim 2; the cap gives up."""
    first = claims.try_claim(box, "a.csv", 1, "run-1", now=100.0)
    assert first == Claim("a.csv", 1, "run-1", 100.0)
    assert claims.try_claim(box, "a.csv", 1, "run-2") is None
    latest = claims.latest_claim(box, "a.csv")
    assert latest == first
    assert claims.next_claim(latest, owner_ended=False, max_claims=3) is None
    number = claims.next_claim(latest, owner_ended=True, max_claims=3)
    assert number == 2
    winners = [claims.try_claim(box, "a.csv", number, owner) for owner in ("run-2", "run-3")]
    assert [w.owner if w else None for w in winners] == ["run-2", None]
    assert claims.latest_claim(box, "a.csv") == winners[0]
    assert claims.next_claim(Claim("a.csv", 3, "run-4", 0.0), owner_ended=True, max_claims=3) is None
    assert claims.next_claim(None, owner_ended=False, max_claims=3) == 1


def test_inbox_outputs_go_to_a_folder_named_after_the_file() -> None:
    """Each inbox file's run writes under the destination, in a folder named like the file without .csv."""
    from flows.inbox import output_for

    assert output_for("s3://bucket/out/", "team/batch-7.CSV") == "s3://bucket/out/team/batch-7"
    assert output_for("out", "a.csv") == "out/a"
