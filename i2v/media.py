"""Check that a file is a real video by decoding it, and take a thumbnail on the way.

A video is only reported as done once every frame of its first video stream decodes;
a truncated download or an HTML error page saved as ``.mp4`` fails here, before it
reaches the destination.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from i2v.errors import InvalidVideo

THUMBNAIL_WIDTH = 320


@dataclass(frozen=True)
class VideoInfo:
    """What decoding the video found."""

    duration_s: float
    width: int
    height: int
    fps: float
    codec: str
    frames: int
    thumbnail_jpeg: bytes | None = None


def probe(path: Path, *, thumbnail: bool = True) -> VideoInfo:
    """Decode every frame of the first video stream; raise :class:`InvalidVideo` if that fails."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidVideo(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = 0
            first_pts = last_pts = None
            thumb = None
            for frame in container.decode(stream):
                if frames == 0 and thumbnail:
                    thumb = _jpeg(frame)
                if frame.pts is not None:
                    first_pts = frame.pts if first_pts is None else min(first_pts, frame.pts)
                    last_pts = frame.pts if last_pts is None else max(last_pts, frame.pts)
                frames += 1
            if frames == 0:
                raise InvalidVideo(f"{path.name} has a video stream with no decodable frames")
            fps = float(rate) if rate else 0.0
            duration = _duration(frames, fps, first_pts, last_pts, stream.time_base)
            return VideoInfo(
                duration_s=round(duration, 3),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=round(fps, 3),
                codec=stream.codec_context.name,
                frames=frames,
                thumbnail_jpeg=thumb,
            )
    except InvalidVideo:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InvalidVideo(f"{path.name} is not a decodable video: {exc}") from exc


def _duration(frames: int, fps: float, first: int | None, last: int | None, time_base: Fraction | None) -> float:
    if fps > 0:
        return frames / fps
    if first is not None and last is not None and time_base:
        return float((last - first) * time_base)
    return 0.0


def _jpeg(frame: av.VideoFrame) -> bytes:
    image = frame.to_image()  # type: ignore[no-untyped-call]
    height = max(2, round(image.height * THUMBNAIL_WIDTH / max(1, image.width)))
    image = image.resize((THUMBNAIL_WIDTH, height))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
