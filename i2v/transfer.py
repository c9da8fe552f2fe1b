"""Copy a finished video from its (expiring) URL into the destination, verified.

The bytes stream from the URL into the destination writer (a multipart upload for S3)
and, where the destination keeps no local copy, into a spool file on local disk, so
memory stays bounded by a few parts. The spool is decoded before the write is
committed: a truncated or undecodable file is aborted and never becomes an object.
Blocking steps (writes, decoding, commits) run through the run's :class:`Offload`.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from i2v.api import open_download
from i2v.blocking import Offload
from i2v.errors import DownloadError
from i2v.media import VideoInfo, probe
from i2v.storage import Destination, ObjectWriter

VIDEO_PREFIX = "videos/"
THUMB_PREFIX = "thumbs/"


@dataclass(frozen=True)
class Stored:
    """A video committed to the destination, with what decoding it found."""

    video_uri: str
    video_bytes: int
    video_sha256: str
    info: VideoInfo
    thumbnail_uri: str | None
    stored_at: float


def video_key(name: str) -> str:
    """Where a row's video lives under the destination."""
    return f"{VIDEO_PREFIX}{name}.mp4"


def thumbnail_key(name: str) -> str:
    """Where a row's thumbnail lives under the destination."""
    return f"{THUMB_PREFIX}{name}.jpg"


async def store_video(http: httpx.AsyncClient, url: str, dest: Destination, *, name: str, offload: Offload) -> Stored:
    """Download ``url`` into ``videos/<name>.mp4``, decode it, then commit; thumbnail beside it."""
    key = video_key(name)
    writer = await offload(dest.open_writer, key, "video/mp4")
    try:
        with tempfile.TemporaryDirectory(prefix="i2v-spool-") as tmp:
            spool_path = Path(tmp) / "video.mp4"
            sink = _Sink(writer, None if writer.local_path is not None else spool_path.open("wb"))
            try:
                declared = await _stream(http, url, sink, offload)
            finally:
                sink.close()
            if declared is not None and sink.size != declared:
                raise DownloadError(f"download ended after {sink.size} of {declared} bytes")
            local = writer.local_path if writer.local_path is not None else spool_path
            info = await offload(probe, local)
        await offload(writer.commit)
    except BaseException:
        await offload(writer.abort)
        raise
    thumbnail_uri = None
    if info.thumbnail_jpeg:
        thumb = thumbnail_key(name)
        await offload(dest.put_bytes, thumb, info.thumbnail_jpeg, "image/jpeg")
        thumbnail_uri = dest.uri_for(thumb)
    return Stored(
        video_uri=dest.uri_for(key),
        video_bytes=sink.size,
        video_sha256=sink.digest.hexdigest(),
        info=VideoInfo(info.duration_s, info.width, info.height, info.fps, info.codec, info.frames),
        thumbnail_uri=thumbnail_uri,
        stored_at=time.time(),
    )


async def _stream(http: httpx.AsyncClient, url: str, sink: _Sink, offload: Offload) -> int | None:
    """Copy the download into ``sink``; returns the declared length.

    One chunk is written (and hashed) in a thread while the next is read from the
    network, so neither waits for the other.
    """
    writing: asyncio.Future[None] | None = None
    try:
        async with open_download(http, url) as (chunks, declared):
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
    """Where downloaded bytes go: the destination's writer, a spool file, and their digest."""

    def __init__(self, writer: ObjectWriter, spool: BinaryIO | None) -> None:
        self.writer = writer
        self.spool = spool
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.writer.write(chunk)
        if self.spool is not None:
            self.spool.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
