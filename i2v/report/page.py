r"""Report pages, ``report.html``: one self-contained file to look at videos.

Two pages use it: each run's own, ``runs/<run>/report.html`` (that run's rows, one per
input row), and the destination's, ``report.html`` at its root (every row's latest
outcome, from the merged manifest, with the run that produced it), so that a re-run
that only skips work, or a rerun of one row, never hides what earlier runs made.

A page has the totals, costs in credits and USD beside the price table's estimate (on
the destination's page, for each run as well), the failure kinds, filters by status,
failure kind and run (and by text, and by mismatch when rows carry one), a grid of
cards — thumbnail, id, prompt, status, cost, a link to the video; a click on the
thumbnail plays it in place; a row without a video shows its input image — and the
failed rows with their kind and message. Each card's picture keeps its video's aspect
ratio (the manifest's width and height; for a row without a video, the input image's
own), and cards are laid out in rows of one height, so portrait and landscape videos
sit side by side without empty bands.

It needs nothing but itself: CSS and JavaScript are inline, no fonts or scripts are
fetched, and it works opened from a local file. The rows travel as one JSON block that
the script renders a page of cards at a time, so a 10,000-row run puts a page of cards
in the document, not 10,000 images; thumbnails load lazily.

Rows come from users' CSVs, so nothing of them is ever markup: the header's text is
escaped, the JSON block cannot close its ``<script>`` element (``<``, ``>`` and ``&`` are
written as ``\u003c``-style escapes), the script only sets ``textContent``, links with a
scheme other than http(s) or file are dropped, and a Content-Security-Policy pins the page
to its own inline script and style by hash.

The page is written in pieces: its header and frame (:mod:`~i2v.report.page_header`),
each row as a card's values (:mod:`~i2v.report.page_cards`), the stylesheet and script
it inlines (:mod:`~i2v.report.page_assets`) and its links (:mod:`~i2v.report.links`).
This module writes them out, a row at a time, into a string, a file or a destination.

Which link a stored object gets is the caller's choice (``href``): paths relative to the
report for a local folder or an S3 static site (:func:`i2v.report.links.relative_href`),
presigned URLs for a report shared from a private bucket.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from i2v.report.links import Href, relative_href
from i2v.report.page_assets import SCRIPT
from i2v.report.page_cards import COLUMNS, card_values
from i2v.report.page_header import ReportSummary, page_head
from i2v.storage.destination import Destination

#: Cards on one page of the grid.
PAGE_SIZE = 60
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_CHUNK = 1 << 20


class TextSink(Protocol):
    """Anything with ``write(str)``, such as an open text file or ``io.StringIO``."""

    def write(self, text: str, /) -> Any: ...


def render_report(
    summary: ReportSummary, rows: Iterable[Mapping[str, Any]], *, href: Href, page_size: int = PAGE_SIZE
) -> str:
    """The report page as a string (see :func:`write_report`)."""
    out = io.StringIO()
    write_report(out, summary, rows, href=href, page_size=page_size)
    return out.getvalue()


def write_report(
    out: TextSink,
    summary: ReportSummary,
    rows: Iterable[Mapping[str, Any]],
    *,
    href: Href,
    page_size: int = PAGE_SIZE,
) -> int:
    """Write the report page to ``out``, reading ``rows`` once, one at a time; returns the rows written.

    Args:
        out: where the HTML goes.
        summary: the header's totals and the run's name and destination.
        rows: manifest rows as mappings of column name to value (``row_index``, ``id``, ``prompt``,
            ``status``, ``error_kind``, ``error_message``, ``video_uri``, ``thumbnail_uri``,
            ``image_url``, ``width``, ``height``, ``credits_used``, ``usd_spent``, ``model``,
            ``params``, ``run``, …; an optional ``mismatch`` flags the card). Missing columns,
            None and NaN read as empty.
        href: the link for a stored object's URI or key (videos, thumbnails, input images
            kept under ``inputs/``, other reports), or None for no link. A link whose scheme
            is not http, https or file (or none, a relative path) is dropped.
        page_size: cards on one page of the grid.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    out.write(page_head(summary, href))
    out.write('<script type="application/json" id="i2v-data">')
    out.write(_json({"columns": COLUMNS, "pageSize": page_size})[:-1] + ',"rows":[\n')
    count = 0
    for row in rows:
        if count:
            out.write(",\n")
        out.write(_json(card_values(row, href)))
        count += 1
    out.write("\n]}</script>\n")
    out.write(f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
    return count


def publish_report(
    dest: Destination,
    summary: ReportSummary,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: str = "report.html",
    href: Href | None = None,
    page_size: int = PAGE_SIZE,
) -> str:
    """Write the report into the destination, atomically and streamed; returns its URI.

    ``href`` defaults to links relative to the report (:func:`relative_href`).
    """
    links = href if href is not None else relative_href(dest.uri, report_key=key)
    writer = dest.open_writer(key, "text/html; charset=utf-8")
    sink = _Utf8Chunks(writer.write)
    try:
        write_report(sink, summary, rows, href=links, page_size=page_size)
        sink.flush()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return dest.uri_for(key)


class _Utf8Chunks:
    """Text in, UTF-8 bytes out in chunks of about a megabyte."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._parts: list[str] = []
        self._size = 0

    def write(self, text: str, /) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= _CHUNK:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._parts:
            self._write("".join(self._parts).encode())
            self._parts, self._size = [], 0


def _json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: it cannot close it or open a comment."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).translate(_JSON_ESCAPES)
