"""Whether a row's image can be had: image URLs asked over the network, local and inline images opened.

:func:`check_urls` asks each distinct URL once, a bounded number at a time, through the
``httpx.AsyncClient`` the caller passes in (:func:`image_client` makes a suitable one: no
credentials, redirects followed as the provider would, finite timeouts); each answer is
why the URL cannot be fetched as an image, or None. :func:`image_problem` says why a
local file or data URI does not open as an image. Both are used by ``i2v validate``
(:mod:`i2v.inputs.input_problems`).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable

import httpx
from PIL import Image

from i2v.inputs.row import Row
from i2v.limits import MAX_REDIRECTS

DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 10.0
#: Statuses after which a HEAD is tried again as a ranged GET: servers that do not do HEAD
#: (405, 501), and presigned URLs, whose signature covers the method (S3 answers 403).
_TRY_GET_AFTER = frozenset({403, 405, 501})
#: Answers that are no image, whatever the URL says (a login page, an error document).
_NOT_IMAGE_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


async def check_urls(http: httpx.AsyncClient, urls: Iterable[str], *, concurrency: int) -> dict[str, str | None]:
    """Each URL → why it cannot be fetched as an image, or None when it answers; at most ``concurrency`` at once.

    ``concurrency`` workers share one iterator of the URLs, so a file of 100,000 URLs
    holds that many tasks, not one per URL.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    distinct = sorted(set(urls))
    pending = iter(distinct)
    answers: dict[str, str | None] = {}

    async def worker() -> None:
        for url in pending:
            answers[url] = await check_url(http, url)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(distinct))):
            group.create_task(worker())
    return answers


async def check_url(http: httpx.AsyncClient, url: str) -> str | None:
    """Why ``url`` cannot be fetched as an image, or None: a HEAD, then a one-byte GET if HEAD is refused."""
    try:
        answer = await http.head(url)
        if answer.status_code in _TRY_GET_AFTER:
            async with http.stream("GET", url, headers={"Range": "bytes=0-0"}) as answer:
                pass  # the status and headers are all that is wanted; the body is left unread
    except httpx.TimeoutException:
        limit = http.timeout.read
        return "did not answer in time" if limit is None else f"did not answer within {limit:g} s"
    except httpx.TooManyRedirects:
        return f"redirects more than {http.max_redirects} times"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"could not be reached: {str(exc) or type(exc).__name__}"
    if not answer.is_success:
        return f"answered HTTP {answer.status_code} {answer.reason_phrase}".rstrip()
    content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(_NOT_IMAGE_TYPES):
        return f"answered {content_type}, not an image"
    return None


def image_client(*, timeout_s: float = DEFAULT_TIMEOUT_S, concurrency: int = DEFAULT_CONCURRENCY) -> httpx.AsyncClient:
    """A client for checking image URLs: no credentials, redirects followed as the provider would, finite timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        headers={"User-Agent": "i2v-pipeline (validate)"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
    )


def is_url(row: Row) -> bool:
    """Whether the row's image is an http(s) URL, which only the network can check."""
    # s3:// images are presigned only when sent; whether they exist is the S3 client's to say.
    return row.image_ref.lower().startswith(("https://", "http://"))


def image_problem(row: Row) -> str | None:
    """Why Pillow cannot open the row's image (its header and, for PNG, every chunk's checksum)."""
    what = repr(row.image_ref) if row.image_path else "the data URI's image"
    try:
        data = row.image_bytes()
        if data is None:
            return None
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except OSError as exc:
        return f"{what} does not open as an image: {exc}"
    except (SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"{what} is not a usable image: {exc}"
    return None
