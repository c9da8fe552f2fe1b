"""Destinations: where outputs go, a local folder or an S3 prefix, written atomically.

An object is either complete or absent: a write is a :class:`ObjectWriter` that is
committed or aborted, and an aborted write leaves nothing behind. The folder
(:mod:`i2v.storage.local`) and S3 (:mod:`i2v.storage.s3`) implementations say how.

The boto3 client is passed in (built at the edge, from the usual AWS settings); nothing
here reads the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from i2v.errors import StorageError

#: Folders of a destination whose objects a manifest row names: videos, thumbnails, input copies.
OUTPUT_FOLDERS = ("videos", "thumbs", "inputs")
#: Bytes read at a time to compute a digest.
_READ_CHUNK = 1 << 20


class ObjectWriter(Protocol):
    """A write in progress: ``write`` chunks, then ``commit`` or ``abort``."""

    #: A local file holding what was written so far, when the destination keeps one.
    local_path: Path | None

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Destination(ABC):
    """Where outputs go. Keys are '/'-separated relative names like ``videos/x.mp4``."""

    uri: str

    @abstractmethod
    def open_writer(
        self, key: str, content_type: str, *, durable: bool = True, local_copy: bool = False
    ) -> ObjectWriter:
        """Start writing ``key``; ``durable`` waits, at commit, until the disk has it (local folders).

        With ``local_copy`` the writer keeps what was written in a local file until it is
        committed (its ``local_path``), for a large object that is checked before commit.
        """

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""

    @abstractmethod
    def get_tail(self, key: str, size: int) -> bytes | None:
        """The object's last ``size`` bytes (all of them if it is shorter), or None if it does not exist.

        One read, whatever the object's size: a file's footer without the file.
        """

    @abstractmethod
    def local_file(self, key: str) -> contextlib.AbstractContextManager[Path | None]:
        """A local file holding the object (None if it does not exist), to read inside the ``with`` block.

        A temporary copy is removed when the block ends; the object is never held in memory.
        """

    def sha256(self, key: str) -> str | None:
        """The SHA-256 of the object (hex), read as a stream, never held whole; None if it does not exist."""
        with self.local_file(key) as path:
            if path is None:
                return None
            digest = hashlib.sha256()
            try:
                with path.open("rb") as handle:
                    while chunk := handle.read(_READ_CHUNK):
                        digest.update(chunk)
            except OSError as exc:
                raise StorageError(f"cannot read {self.uri_for(key)}: {exc}", transient=True) from exc
            return digest.hexdigest()

    @abstractmethod
    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every complete object under ``prefix``: key → size in bytes."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The size of a complete object in bytes, or None if it does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; absent objects are not an error."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        """Write a small object only if ``key`` has none yet; False if it already has one.

        Of several writers racing for a key, exactly one gets True: a conditional write,
        so a writer that dies leaves no lock behind, only the object it wrote.
        """

    @abstractmethod
    def uri_for(self, key: str) -> str: ...

    @abstractmethod
    def browser_url(self, key: str, *, expires_s: int) -> str:
        """A URL a browser opens for the object: a file URL, or a presigned HTTPS GET valid ``expires_s``."""

    def key_for(self, uri: str) -> str | None:
        """The key a manifest's URI names: a key itself (``videos/x.mp4``), or a URI made by :meth:`uri_for`.

        None if it lies elsewhere.
        """
        if uri and "://" not in uri and not uri.startswith("/"):
            return self._checked(uri)
        root = self.uri_for("")
        if not uri.startswith(root):
            return None
        key = uri[len(root) :].lstrip("/")
        try:
            return key if key and self.uri_for(key) == uri else None
        except StorageError:
            return None

    def key_of(self, uri: str) -> str | None:
        """The key of an output (video, thumbnail, input copy) a manifest or record names, wherever it was written.

        Outputs are named relative to the destination (``videos/x.mp4``). Records written
        before that name them by absolute path or URI, which a moved or remounted folder,
        or a copied bucket, no longer matches: such a URI is taken by its output folder and
        file name. Callers check what they find there (its size and digest).
        """
        key = self.key_for(uri)
        if key is not None:
            return key
        parts = uri.rstrip("/").rsplit("/", 2)
        if len(parts) == 3 and parts[1] in OUTPUT_FOLDERS and parts[2]:
            return self._checked(f"{parts[1]}/{parts[2]}")
        return None

    def _checked(self, key: str) -> str | None:
        """``key`` if it names an object inside this destination, else None."""
        if key.startswith("/") or ".." in key.split("/") or "\\" in key or "\x00" in key:
            return None
        try:
            self.uri_for(key)
        except StorageError:
            return None
        return key

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`ConfigError` if the destination cannot be written."""

    @abstractmethod
    def clean_leftovers(self, older_than_s: float) -> int:
        """Remove what writes that never ended (a killed run) left behind, untouched for ``older_than_s``; how many.

        Temporary files in a folder, incomplete multipart uploads on S3: invisible as
        objects, but they take space (and, on S3, are billed) until removed.
        """

    def put_bytes(self, key: str, data: bytes, content_type: str, *, durable: bool = True) -> None:
        """Write a small object atomically."""
        writer = self.open_writer(key, content_type, durable=durable)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
