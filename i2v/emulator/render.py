"""Real, small MP4s: a slow zoom (Ken Burns) over the input image.

The videos are scaled down (a short side of a few hundred pixels at most, a low frame
rate) so that rendering thousands of them stays cheap, but everything a client can
check is honoured exactly: the container and codec (H.264 in MP4, ``yuv420p``), the
aspect ratio, and the duration (``seconds * fps`` frames).
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

#: The orientations a video follows when no aspect ratio is asked (see :func:`aspect_ratio_for`).
ASPECT_RATIOS: dict[str, tuple[int, int]] = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
#: Resolution classes the vendors name in words, by the short side they stand for.
NAMED_RESOLUTIONS: dict[str, int] = {
    "sd": 480,
    "hd": 720,
    "fhd": 1080,
    "2k": 1440,
    "qhd": 1440,
    "4k": 2160,
    "uhd": 2160,
}
_LINES = re.compile(r"^(\d{3,4})p$")
_SIZE = re.compile(r"^(\d{2,5})\s*[x*×]\s*(\d{2,5})$")
_RATIO = re.compile(r"^(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)$")

#: How far the camera pushes in over the whole clip.
_ZOOM = 1.25
#: The source is prepared at this multiple of the frame size so the zoom has detail to show.
_OVERSAMPLE = 2
#: Width/height ratios within this distance of 1 count as square.
_SQUARE_TOLERANCE = 0.03
_SAMPLE_RATE = 44_100
#: Samples per AAC frame.
_AAC_FRAME = 1024


def asked_frame(resolution: object, aspect_ratio: object) -> tuple[int | None, str | None]:
    """The short side and aspect ratio a request asks for, however its model spells them.

    ``resolution`` may be a class (``"720p"``, ``"720P"``), a size (``"1280x720"``, which
    also fixes the aspect ratio when none is asked) or a name (``"hd"``, ``"2K"``).
    ``aspect_ratio`` is ``"W:H"``; words such as ``"adaptive"`` or ``"auto"`` leave the
    orientation to the input image (None). Anything unreadable is None.
    """
    ratio = str(aspect_ratio).strip() if aspect_ratio is not None else ""
    ratio_out = ratio if _RATIO.match(ratio) and ratio_of(ratio) else None
    text = str(resolution).strip().lower() if resolution is not None else ""
    lines = _LINES.match(text)
    size = _SIZE.match(text)
    if lines:
        return int(lines.group(1)), ratio_out
    if size:
        width, height = int(size.group(1)), int(size.group(2))
        return min(width, height), ratio_out or f"{width}:{height}"
    return NAMED_RESOLUTIONS.get(text), ratio_out


def ratio_of(aspect_ratio: str) -> tuple[float, float] | None:
    """(across, down) of ``"W:H"``, or None when it is not a ratio of two positive numbers."""
    match = _RATIO.match(aspect_ratio.strip())
    if not match:
        return None
    across, down = float(match.group(1)), float(match.group(2))
    return (across, down) if across > 0 and down > 0 else None


def frame_size(aspect_ratio: str, short_side: int) -> tuple[int, int]:
    """(width, height) of a frame: ``short_side`` on the short edge, both even."""
    ratio = ratio_of(aspect_ratio)
    if ratio is None:
        raise ValueError(f"not an aspect ratio: {aspect_ratio!r}")
    across, down = ratio
    long_side = _even(short_side * max(across, down) / min(across, down))
    short = _even(short_side)
    return (long_side, short) if across >= down else (short, long_side)


def aspect_ratio_for(image: Image.Image) -> str:
    """The supported aspect ratio closest in orientation to ``image``."""
    ratio = image.width / max(1, image.height)
    if abs(ratio - 1) <= _SQUARE_TOLERANCE:
        return "1:1"
    return "16:9" if ratio > 1 else "9:16"


def render_video(
    image: Image.Image | None,
    *,
    seconds: int,
    aspect_ratio: str,
    short_side: int,
    fps: int,
    seed: int,
    out: Path,
    audio: bool = False,
) -> None:
    """Write an H.264 MP4 of exactly ``seconds * fps`` frames to ``out``.

    ``image`` is cropped to ``aspect_ratio`` around its centre; without one, a
    placeholder drawn from ``seed`` stands in. ``audio`` adds a silent AAC track of the
    same length, as models that generate sound deliver one. The file appears at ``out``
    only once complete.
    """
    if seconds < 1 or fps < 1:
        raise ValueError(f"need at least 1 s at 1 frame per second, got {seconds} s at {fps} fps")
    width, height = frame_size(aspect_ratio, short_side)
    source_size = (width * _OVERSAMPLE, height * _OVERSAMPLE)
    source = _cover(image, source_size) if image is not None else placeholder(source_size, seed)
    rng = np.random.default_rng(seed)
    # The zoom heads for a point near the centre; where exactly is the seed's choice.
    focus_x, focus_y = (0.5 + rng.uniform(-0.15, 0.15, size=2)).tolist()
    total = seconds * fps
    partial = out.with_name(f".{out.name}.partial")
    try:
        # faststart puts the index first, so players can start before the download ends.
        options = {"movflags": "+faststart"}
        with av.open(str(partial), mode="w", format="mp4", container_options=options) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            # One thread: the emulator renders several clips side by side in its own pool.
            stream.options = {"preset": "ultrafast", "crf": "30", "threads": "1"}
            # Every stream must exist before the first packet is written.
            sound = container.add_stream("aac", rate=_SAMPLE_RATE) if audio else None
            for index in range(total):
                progress = index / max(1, total - 1)
                picture = _zoomed(source, (width, height), progress, focus_x, focus_y)
                frame = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            if sound is not None:
                _write_silence(container, sound, seconds)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _write_silence(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: int,
) -> None:
    total = seconds * _SAMPLE_RATE
    for start in range(0, total, _AAC_FRAME):
        samples = np.zeros((1, min(_AAC_FRAME, total - start)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = _SAMPLE_RATE
        frame.pts = start
        frame.time_base = Fraction(1, _SAMPLE_RATE)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def placeholder(size: tuple[int, int], seed: int) -> Image.Image:
    """A deterministic picture for when the input image cannot be had: gradient and discs."""
    width, height = size
    rng = np.random.default_rng(seed)
    start, end = rng.uniform(30, 225, size=(2, 3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    blend = ((xs / max(1, width - 1)) + (ys / max(1, height - 1))) / 2
    pixels = start + (end - start) * blend[..., None]
    for _ in range(5):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.25) * min(width, height)
        colour = rng.uniform(0, 255, size=3)
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        pixels[inside] = 0.35 * pixels[inside] + 0.65 * colour
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` scaled to fill ``size``, the overflow cropped evenly from both sides."""
    image = image.convert("RGB")
    width, height = size
    scale = max(width / image.width, height / image.height)
    crop_w, crop_h = width / scale, height / scale
    left, top = (image.width - crop_w) / 2, (image.height - crop_h) / 2
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def _zoomed(
    source: Image.Image,
    size: tuple[int, int],
    progress: float,
    focus_x: float,
    focus_y: float,
) -> Image.Image:
    # Ease in and out so the motion starts and stops gently.
    eased = progress * progress * (3 - 2 * progress)
    zoom = 1 + (_ZOOM - 1) * eased
    crop_w, crop_h = source.width / zoom, source.height / zoom
    centre_x = source.width * (0.5 + (focus_x - 0.5) * eased)
    centre_y = source.height * (0.5 + (focus_y - 0.5) * eased)
    left = min(max(centre_x - crop_w / 2, 0.0), source.width - crop_w)
    top = min(max(centre_y - crop_h / 2, 0.0), source.height - crop_h)
    box = (left, top, left + crop_w, top + crop_h)
    return source.resize(size, Image.Resampling.BILINEAR, box=box)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))
