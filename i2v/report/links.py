"""Links a report page may use: where each stored object is linked from, and which links are dropped.

Which link a stored object gets is the caller's choice (an :data:`Href`): paths relative
to the report for a local folder or an S3 static site (:func:`relative_href`), presigned
URLs for a report shared from a private bucket. Whatever it returns, :func:`safe_link`
keeps only relative, http(s) and file links, so a ``javascript:`` URL in a user's CSV
never reaches a page.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

#: Turns a stored object's URI (``video_uri``, ``thumbnail_uri``) into the link the page uses.
Href = Callable[[str | None], str | None]
_SAFE_SCHEMES = ("", "http", "https", "file")


def relative_href(root_uri: str, *, report_key: str = "report.html") -> Href:
    """Links relative to the report, for a report stored at ``report_key`` under ``root_uri``.

    That is what a local folder or an S3 static website needs: ``videos/x.mp4`` (a key, as
    manifests name outputs) or ``<root>/videos/x.mp4`` becomes ``videos/x.mp4`` beside a
    report at the root, ``../../videos/x.mp4`` beside ``runs/<run>/report.html``. An http(s)
    URI is kept as it is; a local path elsewhere becomes a ``file://`` URL; anything else
    (another bucket, a key climbing out of the root) gets no link.
    """
    root = root_uri.rstrip("/") + "/"
    report_dir = posixpath.dirname(report_key.strip("/"))

    def href(uri: str | None) -> str | None:
        if not uri:
            return None
        key = uri[len(root) :] if uri.startswith(root) else None
        if key is None and not uri.startswith("/") and not urlsplit(uri).scheme:
            key = uri
        if key is not None:
            if posixpath.normpath(key).startswith(("../", "/")) or posixpath.normpath(key) == "..":
                return None
            return quote(posixpath.relpath(key, report_dir or "."))
        scheme = urlsplit(uri).scheme.lower()
        if scheme in ("http", "https"):
            return uri
        if not scheme and uri.startswith("/"):
            return PurePosixPath(uri).as_uri()
        return None

    return href


def safe_link(url: str | None) -> str | None:
    """A link the page may use: relative, http(s) or file; anything else (``javascript:``) is dropped."""
    if not url or any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url if scheme in _SAFE_SCHEMES else None
