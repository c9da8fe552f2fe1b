"""An input that changes after its run planned it: the shard that reads it says so, naming the file.

A run plans its input once (shards by byte offset, row counts) and reads each shard
later, maybe much later, maybe on another worker. A file edited or replaced meanwhile
must not be read at offsets that no longer fit it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from i2v.errors import InputChanged
from i2v.inputs.shards import plan, read_records
from i2v.inputs.sources import S3Opener

CSV = "id,image_url,prompt\n" + "".join(f"r{i},x.png,Scene number {i}\n" for i in range(6))


def test_a_local_input_edited_after_planning_fails_the_shards_read_afterwards(tmp_path: Path) -> None:
    """Shards read before the edit are fine; a shard read after it raises InputChanged naming the file."""
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    planned = plan(path, rows_per_shard=2)
    assert [r.cells["id"] for r in read_records(planned, planned.shards[0])] == ["r0", "r1"]
    path.write_text(CSV.replace("Scene number 1", "A longer scene, number one"))
    with pytest.raises(InputChanged, match=f"{path} changed after the run planned it") as raised:
        list(read_records(planned, planned.shards[1]))
    assert raised.value.retryable
    assert raised.value.kind == "input_changed"


def test_a_local_input_rewritten_at_the_same_size_is_still_caught(tmp_path: Path) -> None:
    """Same size, other bytes, a later modification time: changed."""
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    planned = plan(path, rows_per_shard=3)
    path.write_text(CSV.replace("Scene number 4", "Scene NUMBER 4"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(InputChanged):
        list(read_records(planned, planned.shards[1]))


def test_another_workers_copy_of_the_file_is_judged_by_its_size(tmp_path: Path) -> None:
    """A clone on another machine has its own modification time: the same size reads, another size fails."""
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    planned = plan(path, rows_per_shard=3)
    assert planned.version is not None
    elsewhere = replace(planned, version=replace(planned.version, host="another-worker", modified="2001-01-01"))
    assert len(list(read_records(elsewhere, elsewhere.shards[1]))) == 3
    path.write_text(CSV + "r6,x.png,One more\n")
    with pytest.raises(InputChanged):
        list(read_records(elsewhere, elsewhere.shards[1]))


def test_an_s3_input_replaced_after_planning_is_caught_by_its_etag(s3_client: Any, bucket: str) -> None:
    """An S3 object overwritten (same size, other bytes) after the plan: its ETag differs, the shard fails."""
    opener = S3Opener(s3_client)
    s3_client.put_object(Bucket=bucket, Key="in/rows.csv", Body=CSV.encode())
    uri = f"s3://{bucket}/in/rows.csv"
    planned = plan(uri, rows_per_shard=3, opener=opener)
    assert len(list(read_records(planned, planned.shards[1], opener=opener))) == 3
    s3_client.put_object(Bucket=bucket, Key="in/rows.csv", Body=CSV.replace("Scene", "SCENE").encode())
    with pytest.raises(InputChanged, match=uri):
        list(read_records(planned, planned.shards[1], opener=opener))
