"""Check that a file is a real video by decoding it, and take a thumbnail on the way.

A video is only reported as done once it passes here; a truncated download or an HTML
error page saved as ``.mp4`` fails before it reaches the destination. How deep the check
goes depends on the size: a video up to ``full_decode_bytes`` (64 MB by default, well
above what a generation returns) has every frame of its first video stream decoded. A
larger one has every packet read (what a truncated or damaged file fails) and its first
and last keyframes decoded: decoding every frame of a high-bitrate video costs more CPU
than moving it, and the cheaper check still catches truncation, damage to the container
and bytes that are no video at all.
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
FULL_DECODE_BYTES = 64 * 1024 * 1024


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


def probe(path: Path, *, thumbnail: bool = True, full_decode_bytes: int = FULL_DECODE_BYTES) -> VideoInfo:
    """Check the first video stream (see the module docstring); raise :class:`InvalidVideo` if it fails."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidVideo(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            if path.stat().st_size <= full_decode_bytes:
                frames, first_pts, last_pts, thumb = _decode_all(container, stream, thumbnail=thumbnail)
            else:
                frames, first_pts, last_pts, thumb = _read_all_decode_ends(container, stream, thumbnail=thumbnail)
            if frames == 0:
                raise InvalidVideo(f"{path.name} has a video stream with no decodable frames")
            rate = stream.average_rate or stream.guessed_rate
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


_Found = tuple[int, int | None, int | None, bytes | None]


def _decode_all(container: av.container.InputContainer, stream: av.VideoStream, *, thumbnail: bool) -> _Found:
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
    return frames, first_pts, last_pts, thumb


def _read_all_decode_ends(container: av.container.InputContainer, stream: av.VideoStream, *, thumbnail: bool) -> _Found:
    packets = 0
    first_pts = last_pts = last_key = None
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        if packet.is_corrupt:
            raise InvalidVideo(f"packet {packets} of the video stream is corrupt")
        if packet.pts is not None:
            first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
            last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
            if packet.is_keyframe:
                last_key = packet.pts
        packets += 1
    ends = [0] if last_key is None else [0, last_key]
    thumb = None
    for at in ends:
        container.seek(at, stream=stream)
        frame = next(iter(container.decode(stream)), None)
        if frame is None:
            raise InvalidVideo("a keyframe of the video stream does not decode")
        if at == 0 and thumbnail:
            thumb = _jpeg(frame)
    return packets, first_pts, last_pts, thumb


def _duration(frames: int, fps: float, first: int | None, last: int | None, time_base: Fraction | None) -> float:
    if fps > 0:
        return frames / fps
    if first is not None and last is not None and time_base:
        return float((last - first) * time_base)
    return 0.0


def _jpeg(frame: av.VideoFrame) -> bytes:
    width, height = frame.width, frame.height
    if width > THUMBNAIL_WIDTH:
        # Smaller frames are kept as they are: enlarging them shows nothing more.
        width, height = THUMBNAIL_WIDTH, max(2, round(height * THUMBNAIL_WIDTH / width))
    # Scaled as it is converted to RGB: a full-size RGB copy of a 1080p frame, and what
    # making an image of it takes, would be ~25 MB for a 300 KB result.
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    image = small.to_image()  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
