"""A destination on any S3-compatible service: a bucket and a key prefix.

Large objects go up as a multipart upload (:mod:`i2v.storage.s3_upload`), which S3 makes visible only once it is
completed; small objects are a single ``PutObject``. An aborted write leaves nothing
visible behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from i2v.errors import ConfigError
from i2v.storage.destination import Destination, ObjectWriter
from i2v.storage.s3_errors import s3_code, storage_error, unusable
from i2v.storage.s3_upload import MultipartWriter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: S3's minimum part size is 5 MiB; 8 MiB keeps memory per upload small and parts few.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: Threads uploading parts, shared by every upload to one destination.
UPLOAD_THREADS = 6
#: Bytes of an object copied to a local file at a time.
DOWNLOAD_CHUNK = 1024 * 1024


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
        return MultipartWriter(self, self._key(key), content_type, local_copy=local_copy)

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
            code = s3_code(exc)
            if code in ("NoSuchKey", "404"):
                return None
            if code == "InvalidRange" and last is not None:
                # Only an empty object has no last bytes to give.
                return consume(io.BytesIO())
            raise storage_error(f"cannot read {self.uri_for(key)}", exc) from exc

    def list_sizes(self, prefix: str) -> dict[str, int]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        sizes: dict[str, int] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    sizes[item["Key"][strip:]] = item["Size"]
        except Exception as exc:
            raise storage_error(f"cannot list {self.uri_for(prefix)}", exc) from exc
        return sizes

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except Exception as exc:
            if s3_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise storage_error(f"cannot read {self.uri_for(key)}", exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise storage_error(f"cannot delete {self.uri_for(key)}", exc) from exc

    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        # A conditional write (AWS S3, MinIO, R2, moto): 412 if the key exists, 409 if
        # another conditional write to it is under way (one of them will win).
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type, IfNoneMatch="*"
            )
        except Exception as exc:
            if s3_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise storage_error(f"cannot write {self.uri_for(key)}", exc) from exc
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
            raise ConfigError(unusable(self.bucket, exc)) from exc

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
            raise storage_error(f"cannot clean up the uploads under {self.uri}", exc) from exc
        return aborted

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key
