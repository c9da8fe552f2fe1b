"""Where an input is read from, and in which format.

An input is a local file or an ``s3://bucket/key`` object, read as one seekable binary
stream: an S3 object is read with ranged GETs a megabyte at a time, so a shard on any
worker reads just its part of a large file, and nothing is copied to local disk first.
The S3 client is passed in (see :class:`S3Opener`), never built here.
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, Literal

from i2v.errors import InputError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "parquet")
#: Opens an input's URI as a seekable binary stream; raises :class:`InputError`.
Opener = Callable[[str], BinaryIO]
_BY_SUFFIX: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
#: Bytes fetched per ranged GET.
_RANGE = 1 << 20


def input_format(uri: str, given: str | None = None) -> Format:
    """The format named by ``given``, or else by the file's extension (CSV when it says nothing)."""
    if given:
        if given not in FORMATS:
            raise InputError(f"unknown input format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    return _BY_SUFFIX.get(PurePosixPath(uri.split("?", 1)[0]).suffix.lower(), "csv")


def is_s3(uri: str) -> bool:
    """Whether ``uri`` names an S3 object."""
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise InputError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def open_local(uri: str) -> BinaryIO:
    """A local input file, opened for reading."""
    path = Path(uri)
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InputError(f"input file not found: {uri}") from None
    except IsADirectoryError:
        raise InputError(f"{uri} is a folder, not an input file") from None
    except OSError as exc:
        raise InputError(f"cannot open {uri}: {exc.strerror}") from None


class S3Opener:
    """Opens ``s3://`` inputs through the client it is given, and local paths as files."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    def __call__(self, uri: str) -> BinaryIO:
        if not is_s3(uri):
            return open_local(uri)
        bucket, key = split_s3(uri)
        size = self._head(uri)["ContentLength"]
        return io.BufferedReader(_S3Range(self._client, bucket, key, size), buffer_size=_RANGE)

    def version(self, uri: str) -> InputVersion:
        """An S3 object's size and ETag (see :func:`input_version`)."""
        head = self._head(uri)
        return InputVersion(head["ContentLength"], etag=head.get("ETag"))

    def _head(self, uri: str) -> HeadObjectOutputTypeDef:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(uri)
        try:
            return self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket"):
                raise InputError(f"input file not found: {uri}") from None
            raise InputError(f"cannot read {uri}: {code or exc}") from None
        except BotoCoreError as exc:
            raise InputError(f"cannot read {uri}: {exc}") from None


@dataclass(frozen=True)
class InputVersion:
    """What tells one version of an input from a changed one (see :func:`input_version`)."""

    size: int
    #: An S3 object's ETag.
    etag: str | None = None
    #: A local file's modification time (UTC, to the nanosecond), and the machine it was read on.
    modified: str | None = None
    host: str | None = None

    def differs(self, now: InputVersion | None) -> bool:
        """Whether ``now`` (None: the input is gone) is another version than this one.

        A local file's modification time counts only on the machine it was first read on:
        another worker's copy of the same file (a clone of the project) has times of its
        own, and is compared by its size.
        """
        if now is None or now.size != self.size or now.etag != self.etag:
            return True
        return self.host == now.host and now.modified != self.modified

    def __str__(self) -> str:
        said = f"{self.size:,} bytes"
        if self.etag is not None:
            said += f", ETag {self.etag}"
        if self.modified is not None:
            said += f", modified {self.modified} UTC on {self.host}"
        return said


def input_version(uri: str, opener: Opener) -> InputVersion | None:
    """The version of an input as it is now; None when it cannot be told.

    A local file: its size and modification time. An S3 object: its size and ETag, asked
    through ``opener`` (an :class:`S3Opener`). A run's plan keeps it, and each shard
    compares it before and after reading its rows, so a file edited or replaced between
    shards is caught rather than read at offsets that no longer fit it.
    """
    if is_s3(uri):
        return opener.version(uri) if isinstance(opener, S3Opener) else None
    try:
        stat = os.stat(uri)
    except OSError:
        return None
    seconds, nanoseconds = divmod(stat.st_mtime_ns, 1_000_000_000)
    modified = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seconds))}.{nanoseconds:09d}"
    return InputVersion(stat.st_size, modified=modified, host=socket.gethostname())


def opener_for(uri: str, client: S3Client | None) -> Opener:
    """The opener for ``uri``: through ``client`` for S3, else local files."""
    if is_s3(uri):
        if client is None:
            raise InputError(f"{uri}: reading from S3 needs an S3 client")
        return S3Opener(client)
    return open_local


class _S3Range(io.RawIOBase):
    """An S3 object as a seekable raw stream; each read is one ranged GET."""

    def __init__(self, client: S3Client, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size or not len(buffer):
            return 0
        end = min(self._size, self._pos + len(buffer)) - 1
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")
            data = body["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise InputError(f"reading s3://{self._bucket}/{self._key} broke off: {exc}") from None
        view = memoryview(buffer)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


#: How long a presigned image URL stays valid: the API fetches it when the job starts.
PRESIGNED_FOR_S = 6 * 3600


def presigner(client: S3Client, *, expires_s: int = PRESIGNED_FOR_S) -> Callable[[str], str]:
    """Turns ``s3://bucket/key`` into a presigned GET URL the API can fetch the image from."""

    def presign(uri: str) -> str:
        bucket, key = split_s3(uri)
        return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)

    return presign
