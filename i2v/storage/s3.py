"""A destination on any S3-compatible service: a bucket and a key prefix.

Large objects go up as a multipart upload, which S3 makes visible only once it is
completed; small objects are a single ``PutObject``. An aborted write leaves nothing
visible behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from i2v.errors import ConfigError, StorageError
from i2v.storage.destination import Destination, ObjectWriter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

#: S3's minimum part size is 5 MiB; 8 MiB keeps memory per upload small and parts few.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Parts of one upload on their way at once, beyond the one being filled, when they are
#: held in memory. Parts read back from a local copy cost no memory and are never waited
#: for while writing.
PARTS_IN_FLIGHT = 2
#: Threads uploading parts, shared by every upload to one destination.
UPLOAD_THREADS = 6
#: Bytes of an object copied to a local file at a time.
DOWNLOAD_CHUNK = 1024 * 1024
#: The checksum a multipart upload declares for its parts, as s3transfer declares it.
PART_CHECKSUM = "CRC32"

_PERMANENT_S3_CODES = frozenset(
    {
        "AccessDenied",
        "NoSuchBucket",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "AllAccessDisabled",
    }
)

_T = TypeVar("_T")


@dataclass
class S3Destination(Destination):
    """A bucket and key prefix on any S3-compatible service."""

    client: S3Client
    bucket: str
    prefix: str = ""
    part_size: int = DEFAULT_PART_SIZE
    #: Where local copies are kept while they upload (None: the system's temporary folder).
    spool_dir: Path | None = None

    def __post_init__(self) -> None:
        self.prefix = self.prefix.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def upload_pool(self) -> ThreadPoolExecutor:
        """The threads this destination's part uploads share (boto3 clients are thread-safe)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="i2v-s3-parts")
            return self._pool

    def open_writer(
        self, key: str, content_type: str, *, durable: bool = True, local_copy: bool = False
    ) -> ObjectWriter:
        # S3 has an object only once it is stored: every write is durable.
        return _MultipartWriter(self, self._key(key), content_type, local_copy=local_copy)

    def get_bytes(self, key: str) -> bytes | None:
        return self._read(key, lambda body: body.read())

    def get_tail(self, key: str, size: int) -> bytes | None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        return self._read(key, lambda body: body.read(), last=size)

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path | None]:
        handle, name = tempfile.mkstemp(prefix="i2v-get-", suffix=".part", dir=self.spool_dir)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                found = self._download(key, out)
            yield path if found else None
        finally:
            path.unlink(missing_ok=True)

    def sha256(self, key: str) -> str | None:
        # Hashed as it streams in: no local copy, no more memory than a chunk.
        def digest(body: Any) -> str:
            hashed = hashlib.sha256()
            while chunk := body.read(DOWNLOAD_CHUNK):
                hashed.update(chunk)
            return hashed.hexdigest()

        return self._read(key, digest)

    def _download(self, key: str, out: BinaryIO) -> bool:
        def copy(body: Any) -> bool:
            shutil.copyfileobj(body, out, DOWNLOAD_CHUNK)
            return True

        return self._read(key, copy) is not None

    def _read(self, key: str, consume: Callable[[Any], _T], *, last: int | None = None) -> _T | None:
        """What ``consume`` makes of the object's body (its ``last`` bytes only), or None if it does not exist."""
        ranged: dict[str, Any] = {} if last is None else {"Range": f"bytes=-{last}"}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **ranged)["Body"]
            return consume(body)
        except Exception as exc:
            code = _s3_code(exc)
            if code in ("NoSuchKey", "404"):
                return None
            if code == "InvalidRange" and last is not None:
                # Only an empty object has no last bytes to give.
                return consume(io.BytesIO())
            raise _storage_error(f"cannot read {self.uri_for(key)}", exc) from exc

    def list_sizes(self, prefix: str) -> dict[str, int]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        sizes: dict[str, int] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    sizes[item["Key"][strip:]] = item["Size"]
        except Exception as exc:
            raise _storage_error(f"cannot list {self.uri_for(prefix)}", exc) from exc
        return sizes

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _storage_error(f"cannot read {self.uri_for(key)}", exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise _storage_error(f"cannot delete {self.uri_for(key)}", exc) from exc

    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        # A conditional write (AWS S3, MinIO, R2, moto): 412 if the key exists, 409 if
        # another conditional write to it is under way (one of them will win).
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type, IfNoneMatch="*"
            )
        except Exception as exc:
            if _s3_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise _storage_error(f"cannot write {self.uri_for(key)}", exc) from exc
        return True

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def browser_url(self, key: str, *, expires_s: int) -> str:
        # Signed here, with no request: anyone holding the URL may read the object until it expires.
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise ConfigError(_unusable(self.bucket, exc)) from exc

    def clean_leftovers(self, older_than_s: float) -> int:
        """Abort the multipart uploads under the prefix started more than ``older_than_s`` ago and never completed.

        A run killed mid-upload leaves its parts stored (and billed) but invisible; a
        bucket lifecycle rule would reap them too, where one is set.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        prefix = f"{self.prefix}/" if self.prefix else ""
        aborted = 0
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except Exception as exc:
            raise _storage_error(f"cannot clean up the uploads under {self.uri}", exc) from exc
        return aborted

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key


class _MultipartWriter:
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

    def __init__(self, dest: S3Destination, key: str, content_type: str, *, local_copy: bool = False) -> None:
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
            raise _storage_error(f"cannot write s3://{bucket}/{self.key}", exc) from exc
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
                raise _storage_error(f"cannot start an upload to s3://{bucket}/{self.key}", exc) from exc
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
            raise _storage_error(f"cannot upload part {number} of s3://{bucket}/{self.key}", exc) from exc
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


def _s3_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or None
    return None


def _unusable(bucket: str, exc: BaseException) -> str:
    """Why a destination bucket cannot be used, in one line that says what to do."""
    name = type(exc).__name__
    if name.startswith(("NoCredentials", "PartialCredentials")):
        return (
            f"no credentials for bucket {bucket!r}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            " (or AWS_PROFILE, or run where a role gives them)"
        )
    code = _s3_code(exc)
    if code in ("404", "NoSuchBucket", "NotFound"):
        return f"no bucket named {bucket!r} at this endpoint (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION)"
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access to bucket {bucket!r} refused ({code}): check the credentials and the bucket's policy"
    return f"destination bucket {bucket!r} is not usable: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    code = _s3_code(exc)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"


def _storage_error(what: str, exc: BaseException) -> StorageError:
    code = _s3_code(exc)
    transient = code not in _PERMANENT_S3_CODES and not type(exc).__name__.startswith("NoCredentials")
    return StorageError(f"{what}: {_describe(exc)}", transient=transient)
