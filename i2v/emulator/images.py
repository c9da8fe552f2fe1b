"""The input image of a job: decoded from a data URI, or fetched from this machine.

The emulator is offline by design: it stands in for the vendor where there is no
internet, and it must never reach out on its own (a dry run over a CSV of public URLs
would otherwise hammer those hosts). So it only fetches from loopback addresses (a
test's or a user's own file server) and draws a placeholder for any other host, which
still yields a valid video of the requested shape.
"""

from __future__ import annotations

import base64
import binascii
import io
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError

from i2v.api.downloads import is_loopback

FETCH_TIMEOUT_S = 5.0
MAX_IMAGE_BYTES = 30 * 1024 * 1024
#: Larger images are shrunk on load: the rendered video is small anyway.
MAX_SIDE = 2048


class ImageProblem(Exception):
    """The job's image cannot be used; ``name`` is the job error's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def load_image(reference: str, *, timeout: float = FETCH_TIMEOUT_S) -> Image.Image | None:
    """The image behind ``reference``, or ``None`` when the emulator will not fetch it.

    Raises :class:`ImageProblem` when the image should be available but is not.
    """
    if reference[:5].lower() == "data:":
        return _decode(_data_uri_bytes(reference), "the data URI")
    if not is_loopback(urlsplit(reference).hostname):
        return None
    try:
        # Never through a proxy: the address is this machine's.
        response = httpx.get(reference, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        raise ImageProblem(
            "ImageDownloadError",
            f"Could not download the image from {reference}: {type(exc).__name__}",
        ) from exc
    if response.status_code != 200:
        raise ImageProblem(
            "ImageDownloadError",
            f"Could not download the image from {reference}: HTTP {response.status_code}",
        )
    return _decode(response.content, reference)


def _data_uri_bytes(uri: str) -> bytes:
    _, _, payload = uri.partition(",")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageProblem("InvalidImageError", "The image data URI is not valid base64.") from exc


def _decode(data: bytes, where: str) -> Image.Image:
    if len(data) > MAX_IMAGE_BYTES:
        message = f"The image from {where} is larger than {MAX_IMAGE_BYTES} bytes."
        raise ImageProblem("InvalidImageError", message)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", (MAX_SIDE, MAX_SIDE))
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        message = f"The image from {where} could not be decoded."
        raise ImageProblem("InvalidImageError", message) from exc
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image
