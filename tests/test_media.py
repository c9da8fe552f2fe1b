"""Checking videos by decoding them: every frame for ordinary sizes, packets and keyframes for large ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2v.emulator.render import render_video
from i2v.errors import InvalidVideo
from i2v.media.probe import probe


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 4-second H.264 video, as the emulator makes them."""
    out = tmp_path_factory.mktemp("media") / "clip.mp4"
    render_video(None, seconds=4, aspect_ratio="16:9", short_side=72, fps=12, seed=3, out=out)
    return out


def test_both_depths_of_check_agree_on_what_the_video_is(video: Path) -> None:
    """The packet-and-keyframe check finds the same frames, duration and size as decoding every frame."""
    full = probe(video)
    light = probe(video, full_decode_bytes=0)
    assert (light.frames, light.duration_s, light.width, light.height, light.codec) == (
        full.frames,
        full.duration_s,
        full.width,
        full.height,
        full.codec,
    )
    assert full.frames == 48
    assert light.thumbnail_jpeg is not None
    assert light.thumbnail_jpeg[:2] == b"\xff\xd8"


def test_the_thumbnail_is_the_first_frame_scaled_to_320_wide(tmp_path: Path) -> None:
    """A wide video's thumbnail keeps its shape at 320 wide and shows the first frame; a small one keeps its size."""
    import io

    import av
    from PIL import Image, ImageStat

    for name, short_side, size in (("wide", 360, (320, 180)), ("small", 72, (128, 72))):
        path = tmp_path / f"{name}.mp4"
        render_video(None, seconds=1, aspect_ratio="16:9", short_side=short_side, fps=4, seed=5, out=path)
        thumb = probe(path).thumbnail_jpeg
        assert thumb is not None
        image = Image.open(io.BytesIO(thumb))
        assert (image.format, image.size) == ("JPEG", size)
        with av.open(str(path)) as container:
            first = next(iter(container.decode(video=0))).to_image().resize(size)  # type: ignore[no-untyped-call]
        # JPEG and the scaling filter move each channel's mean by a few levels, not more.
        for got, want in zip(ImageStat.Stat(image).mean, ImageStat.Stat(first).mean, strict=True):
            assert abs(got - want) < 4


@pytest.mark.parametrize("full_decode_bytes", [0, 1 << 30])
def test_truncated_and_fake_videos_fail_either_check(video: Path, tmp_path: Path, full_decode_bytes: int) -> None:
    """A file cut in half, or an HTML page, is never taken for a video."""
    data = video.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    page = tmp_path / "page.mp4"
    page.write_bytes(b"<html><body>Request has expired</body></html>" * 50)
    for bad in (half, page):
        with pytest.raises(InvalidVideo):
            probe(bad, full_decode_bytes=full_decode_bytes)
