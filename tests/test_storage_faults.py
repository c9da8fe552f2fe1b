"""A destination that fails: a full disk, a cut-short write, a read-only mount, leftovers of killed runs.

Real faults, not imitations: a small tmpfs mounted for the test and filled, a file-size
limit (``RLIMIT_FSIZE``) in a child process, a read-only remount, ``strace`` watching the
system calls of a write, moto's S3 server holding unfinished uploads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from i2v.errors import StorageError
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination
from tests.disks import remount, small_disk

KiB = 1024
MiB = 1024 * KiB


def _everything(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones too, relative to it."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_a_full_disk_fails_the_write_retryably_and_leaves_nothing(tmp_path: Path) -> None:
    """A write into a full disk raises a retryable, unwritable StorageError, and no partial file is left."""
    with small_disk(tmp_path / "disk", "1m") as disk:
        dest = LocalDestination(disk)
        writer = dest.open_writer("videos/a.mp4", "video/mp4")

        def write_two_megabytes() -> None:
            for _ in range(8):
                writer.write(os.urandom(256 * KiB))
            writer.commit()

        with pytest.raises(StorageError, match="No space left on device") as raised:
            write_two_megabytes()
        writer.abort()
        assert (raised.value.retryable, raised.value.unwritable, raised.value.transient) == (True, True, False)
        assert _everything(disk) == [], "an aborted write leaves nothing behind"


def test_a_write_the_disk_cuts_short_is_never_committed(tmp_path: Path) -> None:
    """One chunk larger than the space left is taken in part by the system: the rest is not ignored, the write fails."""
    with small_disk(tmp_path / "disk", "1m") as disk:
        dest = LocalDestination(disk)
        with pytest.raises(StorageError) as raised:
            dest.put_bytes("videos/a.mp4", os.urandom(2 * MiB), "video/mp4")
        assert raised.value.retryable
        assert _everything(disk) == [], "no truncated object under the final name, no temporary file"


def test_a_file_size_limit_cuts_a_write_short_and_it_is_raised(tmp_path: Path) -> None:
    """Under RLIMIT_FSIZE the system writes part of a chunk: the writer goes on, meets EFBIG and raises, retryably."""
    script = textwrap.dedent(
        """
        import resource, sys
        from pathlib import Path
        from i2v.errors import StorageError
        from i2v.storage.local import LocalDestination

        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        dest = LocalDestination(Path(sys.argv[1]))
        writer = dest.open_writer("videos/a.mp4", "video/mp4")
        try:
            writer.write(b"v" * 150_000)
            writer.commit()
        except StorageError as exc:
            writer.abort()
            print("raised", exc.retryable, exc.unwritable, exc)
        else:
            print("committed")
        """
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.startswith("raised True True"), done.stdout + done.stderr
    assert "File too large" in done.stdout
    assert _everything(out) == []


def test_a_read_only_folder_fails_writes_retryably_and_never_with_a_raw_oserror(tmp_path: Path) -> None:
    """On a read-only mount every write raises a retryable StorageError (not EROFS as an OSError); reads still work."""
    with small_disk(tmp_path / "disk") as disk:
        dest = LocalDestination(disk)
        dest.put_bytes("records/a.json", b"{}", "application/json")
        remount(disk, "ro")
        try:
            for attempt in (
                lambda: dest.put_bytes("records/b.json", b"{}", "application/json"),
                lambda: dest.put_bytes("records/new/c.json", b"{}", "application/json"),
                lambda: dest.put_if_absent("claims/k/0001.json", b"{}", "application/json"),
                lambda: dest.delete("records/a.json"),
            ):
                with pytest.raises(StorageError, match="Read-only file system") as raised:
                    attempt()
                assert raised.value.retryable
                assert raised.value.unwritable
            assert dest.get_bytes("records/a.json") == b"{}"
        finally:
            remount(disk, "rw")


def test_a_durable_write_flushes_the_folder_after_its_rename(tmp_path: Path) -> None:
    """Seen by strace: the file is fsynced, renamed into place, then its folder is opened and fsynced."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from i2v.storage.local import LocalDestination

        dest = LocalDestination(Path(sys.argv[1]))
        dest.put_bytes("journal/k.json", b"{}", "application/json")
        dest.put_if_absent("claims/k/0001.json", b"{}", "application/json")
        """
    )
    strace = shutil.which("strace") or pytest.fail("this test watches system calls with strace: apt-get install strace")
    out = tmp_path / "out"
    out.mkdir()
    trace = tmp_path / "trace.log"
    subprocess.run(
        [
            strace,
            *("-f", "-o", str(trace), "-e", "trace=openat,rename,renameat,renameat2,link,linkat,fsync"),
            *(sys.executable, "-c", script, str(out)),
        ],
        check=True,
        timeout=120,
    )
    lines = trace.read_text().splitlines()
    calls = [line.split(None, 1)[1] for line in lines if str(out) in line or "fsync(" in line]
    for folder, placed in ((out / "journal", "rename"), (out / "claims" / "k", "link")):
        (moved,) = [i for i, call in enumerate(calls) if call.startswith(placed) and f'"{folder}/' in call]
        opened = [
            i
            for i, call in enumerate(calls)
            if i > moved and call.startswith("openat") and f'"{folder}"' in call and "O_DIRECTORY" in call
        ]
        assert opened, f"{folder} is opened after the {placed}: {calls[moved:]}"
        descriptor = re.search(r"= (\d+)$", calls[opened[0]])
        assert descriptor is not None
        assert f"fsync({descriptor.group(1)})" in calls[opened[0] + 1], calls[opened[0] :]


def test_leftover_temporary_files_older_than_the_cutoff_are_removed(tmp_path: Path) -> None:
    """A killed run's hidden .part files go once they are old enough; a write in progress and real objects stay."""
    dest = LocalDestination(tmp_path / "out")
    dest.put_bytes("videos/kept.mp4", b"video", "video/mp4")
    old = tmp_path / "out" / "videos" / ".lost.mp4.0123456789abcdef0123456789abcdef.part"
    old.write_bytes(b"half a video")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    deep = tmp_path / "out" / "journal" / ".k.json.fedcba9876543210fedcba9876543210.part"
    deep.parent.mkdir()
    deep.write_bytes(b"{")
    os.utime(deep, (two_hours_ago, two_hours_ago))
    writing = dest.open_writer("videos/busy.mp4", "video/mp4")
    writing.write(b"still coming")
    try:
        assert dest.clean_leftovers(3600) == 2
        assert not old.exists()
        assert not deep.exists()
        assert writing.local_path is not None
        assert writing.local_path.exists()
        assert dest.get_bytes("videos/kept.mp4") == b"video"
        assert dest.clean_leftovers(3600) == 0
    finally:
        writing.abort()


def test_unfinished_s3_uploads_under_the_prefix_are_aborted_when_old(s3_client: Any, bucket: str) -> None:
    """Multipart uploads never completed are aborted once older than the cutoff, and only under the prefix."""
    dest = S3Destination(s3_client, bucket, "sets/a")
    mine = s3_client.create_multipart_upload(Bucket=bucket, Key="sets/a/videos/lost.mp4")["UploadId"]
    s3_client.upload_part(Bucket=bucket, Key="sets/a/videos/lost.mp4", UploadId=mine, PartNumber=1, Body=b"x" * 100)
    other = s3_client.create_multipart_upload(Bucket=bucket, Key="sets/ab/videos/other.mp4")["UploadId"]
    # moto dates every upload 2010-11-10: "old" is judged against a cutoff before and after that day.
    century = 100 * 365 * 86_400
    assert dest.clean_leftovers(century) == 0, "an upload younger than the cutoff may still be under way"
    assert dest.clean_leftovers(3600) == 1
    left = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("sets/ab/videos/other.mp4", other)]
