"""A destination in a local folder: each object written under a hidden temporary name, then renamed into place."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from i2v.errors import ConfigError, StorageError
from i2v.storage.destination import Destination, ObjectWriter


class LocalDestination(Destination):
    """A folder on a local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)

    def open_writer(
        self, key: str, content_type: str, *, durable: bool = True, local_copy: bool = False
    ) -> ObjectWriter:
        # The temporary file being written is the local copy.
        return _LocalWriter(self._path(key), durable=durable)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self._path(key)}: {exc.strerror}", transient=True) from exc

    def get_tail(self, key: str, size: int) -> bytes | None:
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                end = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, end - size))
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}", transient=True) from exc

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path | None]:
        # The object itself, not a copy: writes replace it by rename, so a file opened here
        # keeps reading the version it opened.
        path = self._path(key)
        yield path if path.is_file() else None

    def list_sizes(self, prefix: str) -> dict[str, int]:
        folder = self._path(prefix) if prefix else self.root
        if not folder.is_dir():
            return {}
        sizes = {}
        for entry in folder.rglob("*"):
            if entry.is_file() and not entry.name.startswith("."):
                sizes[entry.relative_to(self.root).as_posix()] = entry.stat().st_size
        return sizes

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {self._path(key)}: {exc.strerror}", transient=True) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self._path(key)}: {exc.strerror}", transient=True) from exc

    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        # Written whole under a temporary name, then hard-linked into place: link(2), like
        # open(O_CREAT | O_EXCL), fails if the name exists, and readers never see half a file.
        final = self._path(key)
        temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, final)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot write {final}: {exc.strerror}", transient=True) from exc
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def uri_for(self, key: str) -> str:
        return str(self._path(key))

    def browser_url(self, key: str, *, expires_s: int) -> str:
        return self._path(key).as_uri()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create destination folder {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"destination folder {self.root} is not writable")

    def _path(self, key: str) -> Path:
        # Keys are checked as text, not resolved on disk: resolving costs a system call per
        # path component, on every write. No key may climb out or start from the top.
        parts = PurePosixPath(key).parts
        if key.startswith("/") or ".." in parts or "\x00" in key or "\\" in key:
            raise StorageError(f"key {key!r} escapes the destination folder")
        return self.root.joinpath(*parts)


class _LocalWriter:
    def __init__(self, final: Path, *, durable: bool) -> None:
        self.final = final
        self.durable = durable
        self.local_path: Path | None = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        # Unbuffered: the partial file is probed before commit and must hold every chunk.
        try:
            self._handle = self.local_path.open("wb", buffering=0)
        except FileNotFoundError:
            # The folder's first object: make the folder (asking on every write costs calls).
            final.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.local_path.open("wb", buffering=0)

    def write(self, chunk: bytes) -> None:
        try:
            self._handle.write(chunk)
        except OSError as exc:
            raise StorageError(f"cannot write {self.final}: {exc.strerror}", transient=False) from exc

    def commit(self) -> None:
        assert self.local_path is not None
        self._handle.flush()
        if self.durable:
            os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.local_path, self.final)
        self.local_path = self.final

    def abort(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        if self.local_path is not None and self.local_path != self.final:
            self.local_path.unlink(missing_ok=True)
