"""Copy a finished video from its (expiring) URL into the destination, verified.

The bytes stream from the URL into the destination writer (a multipart upload for S3)
and, where the destination keeps no local copy, into a spool file on local disk, so
memory stays bounded by one part. The spool is decoded before the write is committed:
a truncated or undecodable file is aborted and never becomes an object.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from i2v.api import open_download
from i2v.errors import DownloadError
from i2v.jobs import Finished
from i2v.media import VideoInfo, probe
from i2v.storage import Destination

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


def video_key(row_id: str) -> str:
    """Where a row's video lives under the destination."""
    return f"{VIDEO_PREFIX}{row_id}.mp4"


def store_video(http: httpx.Client, finished: Finished, dest: Destination, *, row_id: str) -> Stored:
    """Download ``finished.video_url`` into ``videos/<row_id>.mp4``, decode it, then commit."""
    key = video_key(row_id)
    writer = dest.open_writer(key, "video/mp4")
    digest = hashlib.sha256()
    size = 0
    try:
        with tempfile.TemporaryDirectory(prefix="i2v-spool-") as tmp:
            spool = None if writer.local_path is not None else (Path(tmp) / "video.mp4").open("wb")
            try:
                with open_download(http, finished.video_url) as (chunks, declared):
                    for chunk in chunks:
                        writer.write(chunk)
                        if spool is not None:
                            spool.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            finally:
                if spool is not None:
                    spool.close()
            if declared is not None and size != declared:
                raise DownloadError(f"download ended after {size} of {declared} bytes")
            local = writer.local_path if writer.local_path is not None else Path(tmp) / "video.mp4"
            info = probe(local)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    thumbnail_uri = None
    if info.thumbnail_jpeg:
        thumb_key = f"{THUMB_PREFIX}{row_id}.jpg"
        dest.put_bytes(thumb_key, info.thumbnail_jpeg, "image/jpeg")
        thumbnail_uri = dest.uri_for(thumb_key)
    return Stored(
        video_uri=dest.uri_for(key),
        video_bytes=size,
        video_sha256=digest.hexdigest(),
        info=VideoInfo(info.duration_s, info.width, info.height, info.fps, info.codec, info.frames),
        thumbnail_uri=thumbnail_uri,
        stored_at=time.time(),
    )
