"""A destination in a local folder: each object written under a hidden temporary name, then renamed into place.

Every write is checked to its last byte: ``write(2)`` may take fewer bytes than it was
given (a disk filling up, a file-size limit), so the rest is written again until all of it
is in or the system says why not. A durable write is flushed to the disk (``fsync``) before
its rename, and the folder after it, so that a crash never leaves a name without its
bytes nor bytes without their name.

Failures leave here as :class:`~i2v.errors.StorageError`, never as a raw ``OSError``: a
full disk, a read-only mount or a refused permission is ``unwritable`` (nothing is gained
by trying again at once; someone has to act), anything else is ``transient``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from i2v.errors import ConfigError, StorageError
from i2v.storage.destination import Destination, ObjectWriter

#: What the system says when the folder takes no more writes until someone acts.
_UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})
#: The names of temporary files being written: ``.<final name>.<32 hex digits>.part``.
_TEMPORARY_SUFFIX = ".part"


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
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failure("read", path, exc) from exc

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
            raise _failure("read", path, exc) from exc

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path | None]:
        # The object itself, not a copy: writes replace it by rename, so a file opened here
        # keeps reading the version it opened.
        path = self._path(key)
        yield path if path.is_file() else None

    def list_sizes(self, prefix: str) -> dict[str, int]:
        folder = self._path(prefix) if prefix else self.root
        sizes = {}
        try:
            if not folder.is_dir():
                return {}
            for entry in folder.rglob("*"):
                if not entry.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):  # removed while we looked
                        if entry.is_file():
                            sizes[entry.relative_to(self.root).as_posix()] = entry.stat().st_size
        except OSError as exc:
            raise _failure("list", folder, exc) from exc
        return sizes

    def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failure("stat", path, exc) from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _failure("delete", path, exc, writing=True) from exc

    def put_if_absent(self, key: str, data: bytes, content_type: str) -> bool:
        # Written whole under a temporary name, then hard-linked into place: link(2), like
        # open(O_CREAT | O_EXCL), fails if the name exists, and readers never see half a file.
        final = self._path(key)
        temporary = _temporary(final)
        try:
            made = _make_folder(final.parent)
            with _open_new(temporary) as handle:
                _write_all(handle, data)
                os.fsync(handle.fileno())
            os.link(temporary, final)
            _sync_folder(final.parent, made)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _failure("write", final, exc, writing=True) from exc
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        return True

    def uri_for(self, key: str) -> str:
        return str(self._path(key))

    def browser_url(self, key: str, *, expires_s: int) -> str:
        return self._path(key).as_uri()

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"destination {self.root} is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create destination folder {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"destination folder {self.root} is not writable")

    def clean_leftovers(self, older_than_s: float) -> int:
        """Remove the temporary files of writes that never ended (a killed run), untouched for ``older_than_s``.

        A write in progress touches its file with every chunk, so only abandoned ones are
        that old.
        """
        cutoff = time.time() - older_than_s
        removed = 0
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not (name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX)):
                    continue
                path = Path(folder, name)
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise _failure("remove", path, exc, writing=True) from exc
        return removed

    def _path(self, key: str) -> Path:
        # Keys are checked as text, not resolved on disk: resolving costs a system call per
        # path component, on every write. No key may climb out or start from the top.
        parts = PurePosixPath(key).parts
        if key.startswith("/") or ".." in parts or "\x00" in key or "\\" in key:
            raise StorageError(f"key {key!r} escapes the destination folder", retryable=False)
        return self.root.joinpath(*parts)


class _LocalWriter:
    def __init__(self, final: Path, *, durable: bool) -> None:
        self.final = final
        self.durable = durable
        self.local_path: Path | None = _temporary(final)
        self._made_folder = False
        try:
            # Unbuffered: the partial file is probed before commit and must hold every chunk.
            try:
                self._handle = _open_new(self.local_path)
            except FileNotFoundError:
                # The folder's first object: make the folder (asking on every write costs calls).
                self._made_folder = _make_folder(final.parent)
                self._handle = _open_new(self.local_path)
        except OSError as exc:
            raise _failure("write", final, exc, writing=True) from exc

    def write(self, chunk: bytes) -> None:
        try:
            _write_all(self._handle, chunk)
        except OSError as exc:
            raise _failure("write", self.final, exc, writing=True) from exc

    def commit(self) -> None:
        assert self.local_path is not None
        try:
            if self.durable:
                os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self.local_path, self.final)
            self.local_path = self.final
            if self.durable:
                _sync_folder(self.final.parent, self._made_folder)
        except OSError as exc:
            raise _failure("write", self.final, exc, writing=True) from exc

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            if not self._handle.closed:
                self._handle.close()
            if self.local_path is not None and self.local_path != self.final:
                self.local_path.unlink(missing_ok=True)


def _temporary(final: Path) -> Path:
    """A hidden name beside ``final`` for its bytes while they are written."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex}{_TEMPORARY_SUFFIX}")


def _open_new(path: Path) -> io.FileIO:
    """A new file opened for unbuffered writing (every ``write`` is one system call)."""
    return path.open("xb", buffering=0)


def _write_all(handle: io.FileIO, data: bytes) -> None:
    """Write every byte of ``data``: a short write is continued until the system takes the rest or says why not."""
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            # A regular file never takes nothing without an error; do not spin on one that does.
            raise OSError(errno.EIO, f"the write stopped with {len(view)} of {len(data)} bytes left")
        view = view[written:]


def _make_folder(folder: Path) -> bool:
    """Make ``folder`` (and its parents) if it is missing; whether it was made."""
    if folder.is_dir():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return True


def _sync_folder(folder: Path, made: bool) -> None:
    """Flush ``folder``'s entries to the disk (a rename or link in it); its parent's too if it is new."""
    for path in (folder, folder.parent) if made else (folder,):
        handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _failure(what: str, path: Path, exc: OSError, *, writing: bool = False) -> StorageError:
    """The :class:`StorageError` for ``exc``: ``unwritable`` when a write met a full, read-only or forbidden folder."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    unwritable = writing and exc.errno in _UNWRITABLE
    # A read refused for permissions will not pass by itself either.
    transient = not unwritable and exc.errno not in (errno.EACCES, errno.EPERM)
    return StorageError(f"cannot {what} {path}: {reason}", transient=transient, unwritable=unwritable)
