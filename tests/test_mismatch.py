"""The mismatch note: asked duration, aspect ratio and resolution class against what decoding found."""

from __future__ import annotations

from typing import Any

import pytest

from i2v.media.mismatch import describe, ratio_of, resolution_lines

WAN = {"resolution": "480p", "aspect_ratio": "16:9", "duration": 5}


def _note(params: dict[str, Any] | str, duration_s: float | None, width: int | None, height: int | None) -> str | None:
    return describe(params, duration_s=duration_s, width=width, height=height)


@pytest.mark.parametrize(
    ("params", "duration_s", "size"),
    [
        (WAN, 5.0, (832, 480)),  # Wan's own 480p frame: 2.5 % off 16:9, both sides multiples of 16
        (WAN, 5.4, (854, 480)),
        ({**WAN, "aspect_ratio": "9:16"}, 4.6, (480, 832)),
        ({**WAN, "aspect_ratio": "1:1"}, 5.0, (480, 480)),
        ({**WAN, "aspect_ratio": "1:1"}, 5.0, (624, 624)),  # square at 480p, sized by area
        ({"resolution": "720p", "aspect_ratio": "1:1", "duration": 10}, 9.1, (960, 960)),
        ({"resolution": "1080P", "duration": 5}, 5.0, (1920, 1080)),
        ({"resolution": "1080p", "aspect_ratio": "16:9", "duration": 15}, 16.4, (1920, 1080)),
    ],
)
def test_a_video_as_asked_has_no_note(params: dict[str, Any], duration_s: float, size: tuple[int, int]) -> None:
    """Encoder rounding of sizes and lengths, and Wan's frame sizes, are within tolerance."""
    assert _note(params, duration_s, *size) is None


def test_each_difference_is_named_in_order() -> None:
    """Duration, aspect and resolution misses read as 'X asked, Y got', joined by semicolons."""
    asked = {"resolution": "720p", "aspect_ratio": "16:9", "duration": 10}
    assert _note(asked, 5.0, 144, 144) == (
        "duration 10s asked, 5.0s got; aspect 16:9 asked, 1:1 got; resolution 720p asked, 144p got"
    )
    assert _note(asked, 10.0, 1280, 720) is None


@pytest.mark.parametrize(
    ("params", "duration_s", "size", "note"),
    [
        (WAN, 5.6, (854, 480), "duration 5s asked, 5.6s got"),
        (WAN, 4.4, (854, 480), "duration 5s asked, 4.4s got"),
        ({**WAN, "duration": 10}, 8.9, (854, 480), "duration 10s asked, 8.9s got"),
        (WAN, 5.0, (480, 854), "aspect 16:9 asked, 9:16 got"),
        (WAN, 5.0, (640, 480), "aspect 16:9 asked, 4:3 got"),
        (WAN, 5.0, (800, 480), "aspect 16:9 asked, 800x480 got"),
        (WAN, 5.0, (1280, 720), "resolution 480p asked, 720p got"),
        ({"resolution": "1080P"}, 5.0, (832, 480), "resolution 1080P asked, 480p got"),
        ({"resolution": "720p", "aspect_ratio": "1:1"}, 5.0, (720, 1280), "aspect 1:1 asked, 9:16 got"),
    ],
)
def test_a_miss_beyond_tolerance_is_noted(
    params: dict[str, Any], duration_s: float, size: tuple[int, int], note: str
) -> None:
    """Half a second (or a tenth) of duration, 5 % of ratio and 10 % of short side are the limits."""
    assert _note(params, duration_s, *size) == note


def test_what_was_not_asked_or_not_measured_is_not_compared() -> None:
    """A parameter the row did not send, an odd value, or a missing measure never makes a note."""
    assert _note({}, 1.0, 16, 16) is None
    assert _note({"duration": None, "aspect_ratio": None, "resolution": None}, 1.0, 16, 16) is None
    assert _note({"duration": "long", "aspect_ratio": "wide", "resolution": "HD"}, 1.0, 16, 16) is None
    assert _note(WAN, None, None, None) is None
    assert _note(WAN, 5.0, 0, 0) is None
    assert _note(WAN, float("nan"), 854, 480) is None
    assert _note({"duration": True}, 1.0, 854, 480) is None


def test_params_may_be_the_manifests_json_text() -> None:
    """The manifest's ``params`` column (JSON text) reads like the mapping it was made from."""
    assert _note('{"aspect_ratio": "9:16", "duration": 5}', 5.0, 64, 114) is None
    assert _note('{"aspect_ratio": "9:16", "duration": 5}', 2.0, 114, 64) == (
        "duration 5s asked, 2.0s got; aspect 9:16 asked, 16:9 got"
    )


def test_resolution_and_ratio_parsing() -> None:
    """Resolution classes in either case and ratios in the usual spellings parse; anything else is None."""
    assert [resolution_lines(v) for v in ("480p", "720P", " 1080p ", "1080", "4k", None, "p")] == [
        480,
        720,
        1080,
        1080,
        None,
        None,
        None,
    ]
    assert ratio_of("16:9") == pytest.approx(16 / 9)
    assert ratio_of("4x3") == pytest.approx(4 / 3)
    assert [ratio_of(v) for v in ("0:1", "16", None, "a:b")] == [None, None, None, None]
