"""Destinations: atomic local writes, multipart S3 uploads against a real S3 server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from i2v.errors import ConfigError, StorageError
from i2v.storage.from_uri import open_destination
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination

MiB = 1024 * 1024


def test_local_write_is_invisible_until_commit(tmp_path: Path) -> None:
    """A local object appears under its name only on commit; the partial file is hidden."""
    dest = LocalDestination(tmp_path / "out")
    writer = dest.open_writer("videos/a.mp4", "video/mp4")
    writer.write(b"abc")
    assert dest.get_bytes("videos/a.mp4") is None
    assert dest.list_sizes("videos/") == {}
    writer.write(b"def")
    writer.commit()
    assert dest.get_bytes("videos/a.mp4") == b"abcdef"
    assert dest.list_sizes("videos/") == {"videos/a.mp4": 6}


def test_local_abort_leaves_nothing(tmp_path: Path) -> None:
    """An aborted local write leaves no file, partial or final."""
    dest = LocalDestination(tmp_path)
    writer = dest.open_writer("videos/a.mp4", "video/mp4")
    writer.write(b"partial")
    writer.abort()
    assert list((tmp_path / "videos").iterdir()) == []


def test_local_keys_cannot_escape_the_folder(tmp_path: Path) -> None:
    """A key with '..' cannot write outside the destination."""
    dest = LocalDestination(tmp_path / "out")
    with pytest.raises(StorageError, match="escapes"):
        dest.put_bytes("../evil.txt", b"x", "text/plain")


def test_open_destination_parses_uris(tmp_path: Path) -> None:
    """s3:// needs a bucket and a client; other schemes are refused with a clear message."""
    assert isinstance(open_destination(str(tmp_path)), LocalDestination)
    with pytest.raises(ConfigError, match="no bucket"):
        open_destination("s3:///prefix", s3_client=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="only s3://"):
        open_destination("gs://bucket/x")


def test_s3_small_object_and_listing(s3_client: Any, bucket: str) -> None:
    """Small objects go up in one PutObject; listing strips the prefix and sees sizes."""
    dest = open_destination(f"s3://{bucket}/runs/a", s3_client=s3_client)
    dest.put_bytes("records/k.json", b"{}", "application/json")
    assert dest.get_bytes("records/k.json") == b"{}"
    assert dest.get_bytes("records/missing.json") is None
    assert dest.list_sizes("records/") == {"records/k.json": 2}
    assert dest.uri_for("records/k.json") == f"s3://{bucket}/runs/a/records/k.json"
    dest.delete("records/k.json")
    assert dest.list_sizes("records/") == {}


def test_s3_multipart_upload_streams_in_parts(s3_client: Any, bucket: str) -> None:
    """A 23 MiB object goes up as 5 MiB parts, never more than a few held, and reads back byte for byte."""
    from i2v.storage.s3_upload import PARTS_IN_FLIGHT

    dest = S3Destination(s3_client, bucket, "p", part_size=5 * MiB)
    payload = os.urandom(23 * MiB)
    writer = dest.open_writer("videos/big.mp4", "video/mp4")
    for start in range(0, len(payload), MiB):
        writer.write(payload[start : start + MiB])
        assert writer._filled < 5 * MiB  # type: ignore[attr-defined]
        assert len(writer._pending) <= PARTS_IN_FLIGHT  # type: ignore[attr-defined]
    assert dest.get_bytes("videos/big.mp4") is None, "nothing is visible before completion"
    writer.commit()
    assert dest.get_bytes("videos/big.mp4") == payload
    head = s3_client.head_object(Bucket=bucket, Key="p/videos/big.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].endswith('-5"'), "five parts"


def test_s3_local_copy_uploads_parts_read_back_from_disk(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """With a local copy, chunks go to a file that parts are read from; it is checkable before commit, gone after."""
    dest = S3Destination(s3_client, bucket, "p", part_size=5 * MiB, spool_dir=tmp_path)
    payload = os.urandom(23 * MiB)
    writer = dest.open_writer("videos/spooled.mp4", "video/mp4", local_copy=True)
    local = writer.local_path
    assert local is not None
    assert local.parent == dest.spool_dir
    for start in range(0, len(payload), MiB):
        writer.write(payload[start : start + MiB])
        assert writer._chunks == []  # type: ignore[attr-defined]
    assert local.read_bytes() == payload, "the local copy holds every chunk before commit"
    assert dest.get_bytes("videos/spooled.mp4") is None
    writer.commit()
    assert dest.get_bytes("videos/spooled.mp4") == payload
    assert s3_client.head_object(Bucket=bucket, Key="p/videos/spooled.mp4")["ETag"].endswith('-5"')
    assert not local.exists()
    assert writer.local_path is None


def test_s3_parts_carry_checksums_the_service_combines(s3_client: Any, bucket: str, aws_env: str) -> None:
    """Each part is sent with its CRC32 and the object's checksum is made of theirs; not declared when not asked."""
    import base64
    import zlib

    import boto3
    from botocore.config import Config

    dest = S3Destination(s3_client, bucket, "", part_size=5 * MiB)
    payload = os.urandom(12 * MiB)
    writer = dest.open_writer("videos/summed.mp4", "video/mp4")
    writer.write(payload)
    writer.commit()
    head = s3_client.head_object(Bucket=bucket, Key="videos/summed.mp4", ChecksumMode="ENABLED")
    parts = [payload[start : start + 5 * MiB] for start in range(0, len(payload), 5 * MiB)]
    combined = b"".join(zlib.crc32(part).to_bytes(4, "big") for part in parts)
    expected = base64.b64encode(zlib.crc32(combined).to_bytes(4, "big")).decode()
    # S3 appends the part count ("-3"); moto leaves it off.
    assert head["ChecksumCRC32"].split("-")[0] == expected

    plain = boto3.client(
        "s3", endpoint_url=aws_env, region_name="us-east-1", config=Config(request_checksum_calculation="when_required")
    )
    quiet = S3Destination(plain, bucket, "", part_size=5 * MiB)
    writer = quiet.open_writer("videos/unsummed.mp4", "video/mp4")
    writer.write(payload)
    writer.commit()
    assert quiet.get_bytes("videos/unsummed.mp4") == payload
    head = s3_client.head_object(Bucket=bucket, Key="videos/unsummed.mp4", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" not in head


def test_s3_local_copy_small_object_and_abort(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """A small object with a local copy is one PutObject; an aborted one leaves no object, upload or file."""
    dest = S3Destination(s3_client, bucket, "", part_size=5 * MiB, spool_dir=tmp_path)
    small = dest.open_writer("thumbs/a.jpg", "image/jpeg", local_copy=True)
    small.write(b"jpeg bytes")
    small.commit()
    assert dest.get_bytes("thumbs/a.jpg") == b"jpeg bytes"
    big = dest.open_writer("videos/gone.mp4", "video/mp4", local_copy=True)
    big.write(os.urandom(6 * MiB))
    local = big.local_path
    assert local is not None
    big.abort()
    assert not local.exists()
    assert dest.get_bytes("videos/gone.mp4") is None
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_abort_leaves_no_object_and_no_upload(s3_client: Any, bucket: str) -> None:
    """An aborted multipart write leaves neither an object nor a pending upload."""
    dest = S3Destination(s3_client, bucket, "", part_size=5 * MiB)
    writer = dest.open_writer("videos/x.mp4", "video/mp4")
    writer.write(os.urandom(6 * MiB))
    writer.abort()
    assert dest.get_bytes("videos/x.mp4") is None
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_missing_bucket_is_a_config_error(s3_client: Any) -> None:
    """A bucket that does not exist stops the run before any work, naming the bucket."""
    dest = open_destination("s3://no-such-bucket-i2v/x", s3_client=s3_client)
    with pytest.raises(ConfigError, match="no-such-bucket-i2v"):
        dest.check()
    with pytest.raises(StorageError) as info:
        dest.put_bytes("a.txt", b"x", "text/plain")
    assert info.value.transient is False


def test_tail_reads_the_last_bytes_of_an_object_in_a_folder_and_on_s3(
    s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    """``get_tail`` gives the last bytes, all of a shorter object, nothing of an empty one, None for none."""
    for dest in (LocalDestination(tmp_path), S3Destination(s3_client, bucket, "tails")):
        dest.put_bytes("a.bin", b"0123456789", "application/octet-stream")
        dest.put_bytes("empty.bin", b"", "application/octet-stream")
        assert dest.get_tail("a.bin", 4) == b"6789"
        assert dest.get_tail("a.bin", 10) == b"0123456789"
        assert dest.get_tail("a.bin", 1000) == b"0123456789"
        assert dest.get_tail("empty.bin", 8) == b""
        assert dest.get_tail("missing.bin", 8) is None


def test_s3_local_copy_writes_never_wait_for_parts(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """With a local copy, writing goes on while every upload thread is busy; the parts go up afterwards."""
    import threading

    from i2v.storage.s3 import UPLOAD_THREADS

    dest = S3Destination(s3_client, bucket, "p", part_size=5 * MiB, spool_dir=tmp_path)
    payload = os.urandom(40 * MiB)
    release = threading.Event()
    blockers = [dest.upload_pool().submit(release.wait) for _ in range(UPLOAD_THREADS)]
    writer = dest.open_writer("videos/ahead.mp4", "video/mp4", local_copy=True)

    def write_all() -> None:
        for start in range(0, len(payload), MiB):
            writer.write(payload[start : start + MiB])

    writing = threading.Thread(target=write_all)
    writing.start()
    writing.join(timeout=30)
    try:
        assert not writing.is_alive(), "writes waited for parts while the upload threads were busy"
        assert len(writer._pending) == 8  # type: ignore[attr-defined]
    finally:
        release.set()
        writing.join()
    writer.commit()
    assert all(blocker.done() for blocker in blockers)
    assert dest.get_bytes("videos/ahead.mp4") == payload


def test_s3_a_part_that_failed_is_raised_at_the_next_write(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """A part the service refused stops the writing at the next chunk, naming the part, and leaves nothing."""
    from concurrent.futures import wait

    dest = S3Destination(s3_client, bucket, "", part_size=5 * MiB, spool_dir=tmp_path)
    writer = dest.open_writer("videos/refused.mp4", "video/mp4", local_copy=True)
    writer.write(os.urandom(5 * MiB))
    wait(writer._pending)  # type: ignore[attr-defined]
    s3_client.abort_multipart_upload(Bucket=bucket, Key="videos/refused.mp4", UploadId=writer.upload_id)  # type: ignore[attr-defined]
    writer.write(os.urandom(5 * MiB))
    wait(writer._pending)  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match="part 2 of"):
        writer.write(b"more")
    writer.abort()
    assert dest.get_bytes("videos/refused.mp4") is None
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
