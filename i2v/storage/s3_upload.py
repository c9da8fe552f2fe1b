"""Streaming an object into S3 as a multipart upload, several parts on their way at once.

The object becomes visible only when its upload is completed; an aborted upload leaves
nothing behind. Parts are held in memory, or read back from a local copy of what was
written (:class:`MultipartWriter`'s ``local_copy``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from i2v.errors import StorageError
from i2v.storage.s3_errors import storage_error

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

#: Parts of one upload on their way at once, beyond the one being filled, when they are
#: held in memory. Parts read back from a local copy cost no memory and are never waited
#: for while writing.
PARTS_IN_FLIGHT = 2
#: The checksum a multipart upload declares for its parts, as s3transfer declares it.
PART_CHECKSUM = "CRC32"


class UploadTarget(Protocol):
    """Where an upload goes and what it shares (an S3 destination is one)."""

    client: S3Client
    bucket: str
    part_size: int
    spool_dir: Path | None

    def upload_pool(self) -> ThreadPoolExecutor:
        """The threads that upload parts, shared by every upload to the target."""
        ...


class MultipartWriter:
    """Streams parts as they fill, several uploading at once, as s3transfer does.

    Memory stays under ``PARTS_IN_FLIGHT + 1`` parts: a full part is handed to the
    destination's upload pool, and a write waits for a part to finish once that many
    are on their way. With ``local_copy`` every chunk goes to a local file instead
    (``local_path``, removed at commit or abort) and parts are read back from it as they
    upload: they hold no memory, so writes never wait for them. The writing (a download,
    whose URL may expire) then goes at its own pace however slow the service is, and
    what checks the copy before commit runs while the last parts are still uploading.
    A part that failed is raised at the next write.
    """

    def __init__(self, dest: UploadTarget, key: str, content_type: str, *, local_copy: bool = False) -> None:
        self.dest = dest
        self.key = key
        self.content_type = content_type
        # Chunks of the part being filled, joined once when it is full (one copy, not one per chunk).
        self._chunks: list[bytes] = []
        self._filled = 0
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []
        self._pending: list[Future[CompletedPartTypeDef]] = []
        self.local_path: Path | None = None
        self._file: BinaryIO | None = None
        self._sent = 0  # bytes of the local file handed to parts
        # Declared when the client sends checksums anyway (botocore's default): the service
        # then checks every part and combines the parts' checksums, rather than computing
        # a checksum of the whole object again when the upload is completed.
        self._checksum: dict[str, Any] = {"ChecksumAlgorithm": PART_CHECKSUM} if _sends_checksums(dest.client) else {}
        if local_copy:
            handle, name = tempfile.mkstemp(prefix="i2v-upload-", suffix=".part", dir=dest.spool_dir)
            # Unbuffered: a part read back from the file, and a probe of it, see every chunk.
            self._file = os.fdopen(handle, "wb", buffering=0)
            self.local_path = Path(name)

    def write(self, chunk: bytes) -> None:
        if self._file is not None:
            self._file.write(chunk)
            self._filled += len(chunk)
            while self._filled >= self.dest.part_size:
                self._send_range(self.dest.part_size)
            self._settle(len(self._pending))  # waits for nothing
            return
        self._chunks.append(chunk)
        self._filled += len(chunk)
        while self._filled >= self.dest.part_size:
            joined = b"".join(self._chunks)
            size = self.dest.part_size
            part, rest = (joined, b"") if len(joined) == size else (joined[:size], joined[size:])
            self._chunks = [rest] if rest else []
            self._filled = len(rest)
            self._send_part(functools.partial(io.BytesIO, part))

    def commit(self) -> None:
        client, bucket = self.dest.client, self.dest.bucket
        try:
            if self.upload_id is None:
                with self._rest() as body:
                    client.put_object(Bucket=bucket, Key=self.key, Body=body, ContentType=self.content_type)
            else:
                if self._filled or not (self.parts or self._pending):
                    self._send_rest()
                self._settle(0)
                # Every part is sent and the copy checked: dropped now, its pages never
                # have to reach the disk while the service assembles the object.
                self._drop_local()
                client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": sorted(self.parts, key=lambda p: p["PartNumber"])},
                )
        except StorageError:
            raise
        except Exception as exc:
            raise storage_error(f"cannot write s3://{bucket}/{self.key}", exc) from exc
        finally:
            self._drop_local()

    def abort(self) -> None:
        self._chunks, self._filled = [], 0
        for pending in self._pending:
            pending.cancel()
        wait(self._pending)
        self._pending.clear()
        self._drop_local()
        if self.upload_id is not None:
            # Best effort: the write already failed, and an unfinished upload is invisible;
            # a bucket lifecycle rule reaps whatever is left.
            with contextlib.suppress(Exception):
                self.dest.client.abort_multipart_upload(Bucket=self.dest.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None

    def _rest(self) -> IO[bytes]:
        """What no part has taken yet, as a file body."""
        if self._file is not None:
            assert self.local_path is not None
            return _file_range(self.local_path, self._sent, self._filled)
        rest = b"".join(self._chunks)
        self._chunks, self._filled = [], 0
        return io.BytesIO(rest)

    def _send_rest(self) -> None:
        if self._file is not None:
            self._send_range(self._filled)
        else:
            rest = self._rest()
            self._send_part(lambda: rest)

    def _send_range(self, size: int) -> None:
        path, start = self.local_path, self._sent
        assert path is not None
        self._sent += size
        self._filled -= size
        self._send_part(functools.partial(_file_range, path, start, size))

    def _send_part(self, body: Callable[[], IO[bytes]]) -> None:
        client, bucket = self.dest.client, self.dest.bucket
        if self.upload_id is None:
            try:
                started = client.create_multipart_upload(
                    Bucket=bucket, Key=self.key, ContentType=self.content_type, **self._checksum
                )
            except Exception as exc:
                raise storage_error(f"cannot start an upload to s3://{bucket}/{self.key}", exc) from exc
            self.upload_id = started["UploadId"]
        number = len(self.parts) + len(self._pending) + 1
        self._pending.append(self.dest.upload_pool().submit(self._upload_part, self.upload_id, number, body))
        if self._file is None:
            self._settle(PARTS_IN_FLIGHT)

    def _settle(self, keep: int) -> None:
        """Collect every finished part, waiting until at most ``keep`` are still on their way.

        Any part that finishes frees its place: waiting for the oldest would leave
        threads idle behind one slow part. A part that failed raises here.
        """
        while True:
            done = {pending for pending in self._pending if pending.done()}
            if not done:
                if len(self._pending) <= keep:
                    return
                done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            self._pending = [pending for pending in self._pending if pending not in done]
            self.parts += [finished.result() for finished in done]

    def _upload_part(self, upload_id: str, number: int, body: Callable[[], IO[bytes]]) -> CompletedPartTypeDef:
        client, bucket = self.dest.client, self.dest.bucket
        try:
            # A file body, not bytes: botocore streams it in blocks, measured faster than
            # handing the socket one 8 MiB buffer.
            with body() as stream:
                answer = client.upload_part(
                    Bucket=bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=stream, **self._checksum
                )
        except Exception as exc:
            raise storage_error(f"cannot upload part {number} of s3://{bucket}/{self.key}", exc) from exc
        part: CompletedPartTypeDef = {"PartNumber": number, "ETag": answer["ETag"]}
        if self._checksum and "ChecksumCRC32" in answer:
            part["ChecksumCRC32"] = answer["ChecksumCRC32"]
        return part

    def _drop_local(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.local_path is not None:
            self.local_path.unlink(missing_ok=True)
            self.local_path = None


def _file_range(path: Path, start: int, size: int) -> IO[bytes]:
    # An io.RawIOBase is a binary file at run time; typeshed's IO[bytes] does not say so.
    return cast(IO[bytes], _FileRange(path, start, size))


class _FileRange(io.RawIOBase):
    """``size`` bytes of a file from ``start``: a part's body, read (and re-read on a retry) from disk."""

    def __init__(self, path: Path, start: int, size: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._start, self._size, self._at = start, size, 0
        self._file.seek(start)

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        left = self._size - self._at
        wanted = left if size is None or size < 0 else min(size, left)
        data = self._file.read(wanted)
        self._at += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}[whence]
        self._at = min(max(base + offset, 0), self._size)
        self._file.seek(self._start + self._at)
        return self._at

    def tell(self) -> int:
        return self._at

    def close(self) -> None:
        self._file.close()
        super().close()


def _sends_checksums(client: S3Client) -> bool:
    """Whether the client adds checksums to requests that support them (botocore's default)."""
    return getattr(client.meta.config, "request_checksum_calculation", None) == "when_supported"
