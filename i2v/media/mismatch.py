"""Whether a stored video is what its row asked for: duration, aspect ratio, resolution class.

A provider may hand back a clip shorter than asked, in another shape, or smaller; the
video is still valid, so the row stays completed, but a dataset builder wants to know.
:func:`describe` compares the request's parameters with what decoding found and says
what differs in a short note for the manifest's ``mismatch`` column (None when nothing
does). A parameter the row did not send, or a measure decoding did not give, is not
compared: the model chose, or there is nothing to compare with.

Tolerances absorb what encoders do to sizes and lengths without hiding a real miss:

- duration: within half a second or a tenth of the asked length, whichever is larger
  (a frame or two of rounding at the ends; 5 s asked and 10 s got is a miss);
- aspect ratio: width/height within 5 % of the asked ratio (Wan's 480p 16:9 frame is
  832×480, 2.5 % off 16:9 because both sides are multiples of 16);
- resolution class (``480p``: the vendor's "short side of the frame"): the short side
  within 10 % of the class, or the frame's area within 10 % of a 16:9 frame of that
  class, which is how Wan sizes square videos (624×624 at 480p, 960×960 at 720p).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_SHARE = 0.10
ASPECT_TOLERANCE = 0.05
RESOLUTION_TOLERANCE = 0.10
#: Common shapes, so that a note names the ratio a video has rather than its pixels.
_NAMED_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21", "3:2", "2:3")
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")
_RESOLUTION = re.compile(r"^\s*(\d{3,4})\s*p?\s*$", re.IGNORECASE)


def describe(
    params: Mapping[str, Any] | str,
    *,
    duration_s: float | None,
    width: int | None,
    height: int | None,
) -> str | None:
    """What differs between the asked ``params`` and the decoded video, or None if nothing does.

    ``params`` is the request's parameters (a mapping, or the manifest's JSON text), e.g.
    ``{"duration": 10, "aspect_ratio": "16:9"}`` against a 5 s 144×144 clip gives
    ``"duration 10s asked, 5.0s got; aspect 16:9 asked, 1:1 got"``.
    """
    asked = json.loads(params) if isinstance(params, str) else params
    notes = [
        note
        for note in (
            _duration(asked.get("duration"), duration_s),
            _aspect(asked.get("aspect_ratio"), width, height),
            _resolution(asked.get("resolution"), width, height),
        )
        if note
    ]
    return "; ".join(notes) or None


def resolution_lines(value: Any) -> int | None:
    """The short side a resolution class names (``"720p"``, ``"1080P"`` → 720, 1080), or None."""
    match = _RESOLUTION.match(str(value)) if value is not None else None
    return int(match.group(1)) if match else None


def ratio_of(value: Any) -> float | None:
    """Width over height of an aspect ratio such as ``"16:9"``, or None if it is not one."""
    match = _RATIO.match(str(value)) if value is not None else None
    if not match:
        return None
    across, down = float(match.group(1)), float(match.group(2))
    return across / down if across > 0 and down > 0 else None


def _duration(asked: Any, got: float | None) -> str | None:
    seconds = _number(asked)
    if seconds is None or seconds <= 0 or got is None or not math.isfinite(got):
        return None
    if abs(got - seconds) <= max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_SHARE * seconds):
        return None
    return f"duration {seconds:g}s asked, {got:.1f}s got"


def _aspect(asked: Any, width: int | None, height: int | None) -> str | None:
    wanted = ratio_of(asked)
    if wanted is None or not width or not height:
        return None
    if _close(width / height, wanted, ASPECT_TOLERANCE):
        return None
    return f"aspect {str(asked).strip()} asked, {_shape(width, height)} got"


def _resolution(asked: Any, width: int | None, height: int | None) -> str | None:
    lines = resolution_lines(asked)
    if lines is None or not width or not height:
        return None
    short = min(width, height)
    wide_area = lines * lines * 16 / 9
    if _close(short, lines, RESOLUTION_TOLERANCE) or _close(width * height, wide_area, RESOLUTION_TOLERANCE):
        return None
    return f"resolution {str(asked).strip()} asked, {short}p got"


def _shape(width: int, height: int) -> str:
    """A named ratio when the frame is close to one, else its pixels (``1:1``, ``640x512``)."""
    ratio = width / height
    for name in _NAMED_RATIOS:
        named = ratio_of(name)
        if named is not None and _close(ratio, named, ASPECT_TOLERANCE):
            return name
    return f"{width}x{height}"


def _close(got: float, wanted: float, tolerance: float) -> bool:
    return abs(got - wanted) <= tolerance * wanted


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
