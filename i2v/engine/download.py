"""Copy a finished video from its (expiring) URL into the destination, verified.

The bytes stream from the URL into the destination's writer, which keeps a local copy
(the file being written in a local folder; for S3, a file on local disk that the
multipart upload reads its parts from), so memory stays bounded by a few chunks. The
local copy is decoded before the write is committed: a truncated or undecodable file is
aborted and never becomes an object.
Blocking steps (writes, decoding, commits) run through the run's :class:`Offload`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from i2v.api.downloads import DownloadRules, open_download
from i2v.engine.offload import Offload
from i2v.errors import DownloadError, StorageError
from i2v.media.probe import VideoInfo, probe
from i2v.storage.destination import Destination, ObjectWriter

log = logging.getLogger(__name__)

VIDEO_PREFIX = "videos/"
THUMB_PREFIX = "thumbs/"
#: Bytes of a stored video read at a time to hash it.
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Stored:
    """A video committed to the destination, with what decoding it found.

    ``video_uri`` and ``thumbnail_uri`` are keys relative to the destination's root
    (``videos/x.mp4``): a destination moved, remounted or copied elsewhere still has them.
    """

    video_uri: str
    video_bytes: int
    video_sha256: str
    info: VideoInfo
    thumbnail_uri: str | None
    stored_at: float

    def outcome_fields(self) -> dict[str, Any]:
        """The manifest's video columns for this video (a completed row's outcome takes them)."""
        return {
            "video_uri": self.video_uri,
            "video_bytes": self.video_bytes,
            "video_sha256": self.video_sha256,
            "duration_s": self.info.duration_s,
            "width": self.info.width,
            "height": self.info.height,
            "fps": self.info.fps,
            "codec": self.info.codec,
            "thumbnail_uri": self.thumbnail_uri,
        }


def video_key(name: str) -> str:
    """Where a row's video lives under the destination."""
    return f"{VIDEO_PREFIX}{name}.mp4"


def thumbnail_key(name: str) -> str:
    """Where a row's thumbnail lives under the destination."""
    return f"{THUMB_PREFIX}{name}.jpg"


async def store_video(
    http: httpx.AsyncClient,
    url: str,
    dest: Destination,
    *,
    name: str,
    offload: Offload,
    rules: DownloadRules | None = None,
) -> Stored:
    """Download ``url`` into ``videos/<name>.mp4``, decode it, then commit; thumbnail beside it.

    ``rules`` say which URLs are followed and how many bytes are taken (default: https only).
    """
    sink = _Sink(dest, video_key(name))
    try:
        declared = await _stream(http, url, sink, offload, rules)
        if declared is not None and sink.size != declared:
            raise DownloadError(f"download ended after {sink.size} of {declared} bytes")
        return await offload(sink.finish, thumbnail_key(name))
    except BaseException:
        await offload(sink.abort)
        raise


async def _stream(
    http: httpx.AsyncClient, url: str, sink: _Sink, offload: Offload, rules: DownloadRules | None
) -> int | None:
    """Copy the download into ``sink``; returns the declared length.

    One chunk is written (and hashed) in a thread while the next is read from the
    network, so neither waits for the other.
    """
    writing: asyncio.Future[None] | None = None
    try:
        async with open_download(http, url, rules=rules) as (chunks, declared):
            async for chunk in chunks:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(offload(sink.write, chunk))
            if writing is not None:
                await writing
            return declared
    finally:
        if writing is not None and not writing.done():
            # The download broke off: let the write in its thread finish before the abort.
            await asyncio.wait([writing])


class _Sink:
    """Where downloaded bytes go: the destination's writer, and their digest.

    Its methods block, and run in a thread: each chunk is one call, and the end (decode,
    commit, thumbnail) one more.
    """

    def __init__(self, dest: Destination, key: str) -> None:
        self.dest = dest
        self.key = key
        self.writer: ObjectWriter | None = None
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if self.writer is None:
            self.writer = self.dest.open_writer(self.key, "video/mp4", local_copy=True)
        self.writer.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def finish(self, thumb_key: str) -> Stored:
        """Decode what was written, commit it, and store the thumbnail."""
        if self.writer is None:
            raise DownloadError("the download was empty")
        if self.writer.local_path is None:
            raise TypeError(f"{type(self.writer).__name__} kept no local copy to check")
        info = probe(self.writer.local_path)
        self.writer.commit()
        thumbnail_uri = None
        if info.thumbnail_jpeg:
            # A lost thumbnail costs nothing a rerun cannot redo: no need to wait for the disk,
            # and no reason to fail a row whose video is committed.
            try:
                self.dest.put_bytes(thumb_key, info.thumbnail_jpeg, "image/jpeg", durable=False)
                thumbnail_uri = thumb_key
            except StorageError as exc:
                log.warning("%s: stored without its thumbnail (%s)", self.key, exc)
        return Stored(
            video_uri=self.key,
            video_bytes=self.size,
            video_sha256=self.digest.hexdigest(),
            info=VideoInfo(info.duration_s, info.width, info.height, info.fps, info.codec, info.frames),
            thumbnail_uri=thumbnail_uri,
            stored_at=time.time(),
        )

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def inspect_stored(dest: Destination, name: str) -> Stored | None:
    """The video already stored under ``name``, decoded and hashed from the destination; None if there is none.

    For a row whose record was lost: what an earlier run stored is looked at, not fetched
    again. Raises :class:`~i2v.errors.InvalidVideo` if it does not decode.
    """
    key = video_key(name)
    with dest.local_file(key) as path:
        if path is None:
            return None
        info = probe(path)
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise StorageError(f"cannot read {dest.uri_for(key)}: {exc}", transient=True) from exc
    thumb = thumbnail_key(name)
    return Stored(
        video_uri=key,
        video_bytes=size,
        video_sha256=digest.hexdigest(),
        info=VideoInfo(info.duration_s, info.width, info.height, info.fps, info.codec, info.frames),
        thumbnail_uri=thumb if dest.size(thumb) is not None else None,
        stored_at=time.time(),
    )
