"""The bounds a run puts on what it reads and downloads, each with the setting that moves it.

An input is a file someone else made and a download URL is something a remote service
handed over; neither gets to decide how much this process reads, holds or writes.

=====================  ===========================  =======================================
limit                  default                      setting (``i2v run`` / flow ``limits``)
=====================  ===========================  =======================================
rows in one input      1,000,000                    ``--max-rows`` / ``max_rows``
prompt length          the model's (800 for Wan)    ``--max-prompt-chars`` / ``max_prompt_chars``
one image (local or    20 MiB                       ``--max-image-mb`` / ``max_image_bytes``
data URI)
one row of the CSV     room for the largest image   follows ``max_image_bytes``
                       as a data URI, plus 1 MiB
one id                 1,024 characters             fixed: ids name files
one video download     2 GiB                        ``--max-video-mb`` / ``max_video_bytes``
redirects per          5                            fixed
download
image URL schemes      ``https``                    ``--allow-http-images`` / ``allow_http_images``
local images           inside the input's folder    ``--image-root DIR`` / ``image_root``
=====================  ===========================  =======================================
"""

from __future__ import annotations

from dataclasses import dataclass

from i2v.errors import ConfigError

MIB = 1024 * 1024
#: Longest ``id`` kept as written in the manifest (output names are shorter still).
MAX_ID_CHARS = 1024
#: Redirects a download may follow; each hop is checked against the URL rules.
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Limits:
    """What one run accepts. Plain data: it travels with the run to every worker."""

    max_rows: int = 1_000_000
    #: None: the model's own limit, from the registry.
    max_prompt_chars: int | None = None
    max_image_bytes: int = 20 * MIB
    max_video_bytes: int = 2048 * MIB
    allow_http_images: bool = False
    #: Folder local images must be inside; None: the input file's folder.
    image_root: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_image_bytes", "max_video_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_prompt_chars is not None and self.max_prompt_chars < 1:
            raise ConfigError(f"max_prompt_chars must be at least 1, got {self.max_prompt_chars}")

    @property
    def max_row_bytes(self) -> int:
        """The longest CSV row read: the largest image inline as base64, and the rest of the row."""
        return (self.max_image_bytes + 2) // 3 * 4 + MIB


def megabytes(value: int) -> str:
    """A byte count as people read limits: ``20 MiB``."""
    return f"{value / MIB:g} MiB"
