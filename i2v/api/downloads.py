"""Which download URLs the pipeline follows, and how far.

The API hands back a URL for each finished video, and the pipeline fetches it without
the key. That URL still comes from outside: it is followed only over ``https``, except
plain ``http`` to a loopback host when the API itself is on loopback (the emulator, or
a local proxy of the API), through a bounded number of redirects, each checked by the
same rules, for a bounded number of bytes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from i2v.api.error_answers import error_details
from i2v.errors import DownloadError, DownloadRefused
from i2v.limits import MAX_REDIRECTS, Limits, megabytes


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DownloadRules:
    """What a download may be: its scheme and host, its redirects, its size."""

    max_bytes: int = Limits().max_video_bytes
    max_redirects: int = MAX_REDIRECTS
    #: Plain http to a loopback host; only ever for an API that is itself on loopback.
    allow_loopback_http: bool = False

    @classmethod
    def for_api(cls, base_url: str, *, max_bytes: int = Limits().max_video_bytes) -> DownloadRules:
        """The rules for videos from the API at ``base_url``."""
        return cls(max_bytes=max_bytes, allow_loopback_http=is_loopback(urlsplit(base_url).hostname))

    def check(self, url: str) -> None:
        """Raise :class:`DownloadRefused` unless ``url`` may be fetched."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise DownloadRefused("the video URL is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme == "https" and host:
            return
        if scheme == "http" and host and self.allow_loopback_http and is_loopback(host):
            return
        shown = f"{scheme}://{host or ''}" if scheme else repr(url[:40])
        raise DownloadRefused(f"the video URL ({shown}) is not https; only https downloads are followed")

    def check_size(self, size: int) -> None:
        """Raise :class:`DownloadRefused` once a download passes the size limit."""
        if size > self.max_bytes:
            raise DownloadRefused(f"the video is larger than {megabytes(self.max_bytes)}, the limit (--max-video-mb)")


@asynccontextmanager
async def open_download(
    http: httpx.AsyncClient, url: str, *, rules: DownloadRules | None = None, chunk_size: int = 1 << 20
) -> AsyncIterator[tuple[AsyncIterator[bytes], int | None]]:
    """Stream a finished video: yields (chunks, declared length). No API key is sent.

    Redirects are followed here, not by the client, so that every hop meets ``rules``;
    the stream stops with :class:`DownloadRefused` once it passes the size limit.
    """
    rules = rules or DownloadRules()
    try:
        response = await _follow(http, url, rules)
        try:
            if not response.is_success:
                await response.aread()
                message, _ = error_details(response)
                raise DownloadError(
                    f"download answered HTTP {response.status_code}: {message}", status=response.status_code
                )
            length = response.headers.get("Content-Length")
            declared = int(length) if length and length.isdigit() else None
            if declared is not None:
                rules.check_size(declared)

            async def chunks() -> AsyncIterator[bytes]:
                received = 0
                # Pieces as they are read, joined once into a chunk of at least ``chunk_size``:
                # httpx's own chunking copies every byte several times on its way.
                pieces: list[bytes] = []
                filled = 0
                try:
                    async for piece in response.aiter_bytes():
                        received += len(piece)
                        rules.check_size(received)
                        pieces.append(piece)
                        filled += len(piece)
                        if filled >= chunk_size:
                            yield b"".join(pieces)
                            pieces, filled = [], 0
                    if pieces:
                        yield b"".join(pieces)
                except httpx.TransportError as exc:
                    raise DownloadError(f"download broke off: {type(exc).__name__}: {exc}") from exc

            yield chunks(), declared
        finally:
            await response.aclose()
    except httpx.TransportError as exc:
        raise DownloadError(f"download failed: {type(exc).__name__}: {exc}") from exc


async def _follow(http: httpx.AsyncClient, url: str, rules: DownloadRules) -> httpx.Response:
    """GET ``url``, following at most ``rules.max_redirects`` redirects that each pass ``rules``."""
    for _ in range(rules.max_redirects + 1):
        rules.check(url)
        response = await http.send(http.build_request("GET", url), stream=True, follow_redirects=False)
        location = response.headers.get("Location") if response.is_redirect else None
        if location is None:
            return response
        await response.aclose()
        url = str(response.url.join(location))
    raise DownloadRefused(f"the video URL redirected more than {rules.max_redirects} times")
