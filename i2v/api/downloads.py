"""Which download URLs the pipeline follows, and how far.

The API hands back a URL for each finished video, and the pipeline fetches it without
the key. That URL still comes from outside: it is followed only over ``https``, except
plain ``http`` to a loopback host when the API itself is on loopback (the emulator, or
a local proxy of the API), through a bounded number of redirects, each checked by the
same rules, for a bounded number of bytes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from i2v.errors import DownloadRefused
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
