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

Which link a stored object gets is the caller's choice (``href``): paths relative to the
report for a local folder or an S3 static site (:func:`relative_href`), presigned URLs for
a report shared from a private bucket.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import PurePosixPath
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from i2v.api.prices import CREDITS_PER_USD, credits
from i2v.report.summary import RunTotals, Summary, dollars, row_estimate, row_usd
from i2v.storage.destination import Destination

# The page's stylesheet and script, package files beside this module. Both are inlined
# into the page, which is pinned to them by hashes in its Content-Security-Policy: no
# other script or style runs there, whatever the data holds. The script reads the rows
# from the page's JSON block and builds everything with DOM calls and ``textContent``;
# it never parses data as HTML.
STYLE = resources.files(__package__).joinpath("page.css").read_text(encoding="utf-8")
SCRIPT = resources.files(__package__).joinpath("page.js").read_text(encoding="utf-8")

#: Turns a stored object's URI (``video_uri``, ``thumbnail_uri``) into the link the page uses.
Href = Callable[[str | None], str | None]

#: Cards on one page of the grid.
PAGE_SIZE = 60
#: What the page keeps of each row, in the order of the JSON block's arrays.
COLUMNS = (
    "row_index",
    "id",
    "prompt",
    "status",
    "error_kind",
    "error_message",
    "retryable",
    "video",
    "thumb",
    "duration_s",
    "width",
    "height",
    "credits_used",
    "generation_seconds",
    "model",
    "params",
    "mismatch",
    "run",
    "image",
    "usd",
    "estimate",
)
_SAFE_SCHEMES = ("", "http", "https", "file")
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
_CHUNK = 1 << 20


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: Only the page's own script and style run; media may come from the report's folder or the web.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_csp_hash(SCRIPT)}",
        f"style-src {_csp_hash(STYLE)}",
        "img-src 'self' file: http: https: data: blob:",
        "media-src 'self' file: http: https: data: blob:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)


@dataclass(frozen=True)
class ReportSummary:
    """What the page's header says about the run, or about the destination."""

    run: str
    destination: str
    total: int
    completed: int
    failed: int
    skipped: int
    credits_used: float = 0.0
    #: USD of the completed rows (the provider's figures, or credits at 2,000,000 a dollar).
    usd_spent: float = 0.0
    #: What the completed rows should have cost by the price table, in credits (None: not shown).
    estimated_credits: float | None = None
    wall_s: float | None = None
    generation_p50_s: float | None = None
    generation_p95_s: float | None = None
    #: When the report was written; shown as given (None: not shown, so output is reproducible).
    written_at: datetime | None = None
    #: ``run``: one run's rows. ``destination``: every row's latest outcome, over :attr:`runs`.
    scope: Literal["run", "destination"] = "run"
    #: The destination's page: each run's rows and costs, and the key of its report (None: it has none).
    runs: tuple[tuple[RunTotals, str | None], ...] = ()
    #: A run's page: the key of the destination's report, linked from the header (None: no link).
    destination_report: str | None = None
    #: The destination's page: run → the key of its comparison view (``runs/<run>/compare.html``).
    comparisons: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        summary: Summary,
        *,
        run: str,
        destination: str,
        written_at: datetime | None = None,
        destination_report: str | None = None,
    ) -> ReportSummary:
        """The header of a run summarised by :class:`i2v.report.summary.Tally`."""
        return cls(
            run=run,
            destination=destination,
            total=summary.total,
            completed=summary.completed,
            failed=summary.failed,
            skipped=summary.skipped,
            credits_used=summary.credits_used,
            usd_spent=summary.usd_spent,
            estimated_credits=summary.estimated_credits,
            wall_s=summary.wall_s,
            generation_p50_s=summary.generation_p50_s,
            generation_p95_s=summary.generation_p95_s,
            written_at=written_at,
            destination_report=destination_report,
        )

    @classmethod
    def of_destination(
        cls,
        summary: Summary,
        runs: Iterable[tuple[RunTotals, str | None]],
        *,
        destination: str,
        written_at: datetime | None = None,
        comparisons: Mapping[str, str] | None = None,
    ) -> ReportSummary:
        """The header of a destination's rows, each run with the key of its report (None: it has none).

        ``comparisons``: the runs that compared models, with the key of each one's comparison view.
        """
        return cls(
            run="",
            destination=destination,
            total=summary.total,
            completed=summary.completed,
            failed=summary.failed,
            skipped=summary.skipped,
            credits_used=summary.credits_used,
            usd_spent=summary.usd_spent,
            estimated_credits=summary.estimated_credits,
            generation_p50_s=summary.generation_p50_s,
            generation_p95_s=summary.generation_p95_s,
            written_at=written_at,
            scope="destination",
            runs=tuple(runs),
            comparisons=dict(comparisons or {}),
        )


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
    out.write(_head(summary, href))
    out.write('<script type="application/json" id="i2v-data">')
    out.write(_json({"columns": COLUMNS, "pageSize": page_size})[:-1] + ',"rows":[\n')
    count = 0
    for row in rows:
        if count:
            out.write(",\n")
        out.write(_json(_page_row(row, href)))
        count += 1
    out.write("\n]}</script>\n")
    out.write(f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
    return count


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


# --- the page ---------------------------------------------------------------------------


def _head(summary: ReportSummary, href: Href) -> str:
    e = _escape
    whole = summary.scope == "destination"
    totals = [
        ("rows", "total", f"{summary.total:,}"),
        ("completed", "completed", f"{summary.completed:,}"),
        ("failed", "failed", f"{summary.failed:,}"),
        ("skipped", "skipped", f"{summary.skipped:,}"),
        ("credits used", "credits", credits(summary.credits_used)),
        ("USD spent", "usd", dollars(summary.usd_spent)),
    ]
    if summary.estimated_credits is not None:
        totals.append(("estimated (price table)", "estimate", _estimate(summary.estimated_credits)))
    if whole:
        totals.insert(0, ("runs", "runs", f"{len(summary.runs):,}"))
    if summary.wall_s is not None:
        totals.append(("wall time", "wall", _duration(summary.wall_s)))
    if summary.generation_p50_s is not None:
        p95 = "" if summary.generation_p95_s is None else f" / {_duration(summary.generation_p95_s)}"
        totals.append(("generation p50 / p95", "generation", _duration(summary.generation_p50_s) + p95))
    cells = "".join(
        f'<div class="{name}"><dt>{e(label)}</dt><dd data-total="{name}">{e(value)}</dd></div>'
        for label, name, value in totals
    )
    written = f" · written {e(summary.written_at.isoformat(timespec='seconds'))}" if summary.written_at else ""
    if whole:
        title = "i2v destination"
        heading = "Image-to-video destination"
        scope = (
            '<p class="scope">Every row of the destination, each with its latest outcome and the run that'
            " produced it: a run that skipped work already done never hides it.</p>"
        )
        manifest = "the destination's manifest"
    else:
        title = f"i2v run {e(summary.run)}"
        heading = f'Image-to-video run <span id="run">{e(summary.run)}</span>'
        other = _link(href(summary.destination_report)) if summary.destination_report else None
        scope = '<p class="scope">This run\'s rows, one per input row.'
        if other:
            scope += (
                f' <a id="destination-report" href="{e(other)}">The destination\'s report</a>'
                " has every row's latest outcome, over every run."
            )
        scope += "</p>"
        manifest = "the run's manifest"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(CONTENT_SECURITY_POLICY)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body data-scope="{e(summary.scope)}">
<header>
<h1>{heading}</h1>
<p class="where">Destination: <code id="destination">{e(summary.destination)}</code>{written}</p>
{scope}
<dl class="totals" id="totals">{cells}</dl>
{_runs_table(summary, href) if whole else ""}
</header>
<noscript><section><p>This report needs JavaScript to show its rows;
<code>manifest.csv</code> beside it has every row.</p></section></noscript>
<div id="app" hidden>
<section><div class="kinds" id="kinds" aria-label="failures by kind"></div></section>
<nav class="controls" id="cards" aria-label="filters">
<label>Status <select id="f-status"></select></label>
<label>Failure kind <select id="f-kind"></select></label>
<label id="f-run-wrap" hidden>Run <select id="f-run"></select></label>
<label>Search <input id="f-text" type="search" placeholder="id, prompt or message" autocomplete="off"></label>
<label id="f-flagged-wrap" hidden><input id="f-flagged" type="checkbox">
<span>mismatches only (<span id="f-flagged-count"></span>)</span></label>
<output id="count" aria-live="polite"></output>
<nav class="pager cards-pager" aria-label="pages"></nav>
</nav>
<main id="grid" class="grid"></main>
<section><nav class="pager cards-pager" aria-label="pages"></nav></section>
<section id="failures">
<h2>Failed rows (<span id="failures-count">0</span>)</h2>
<p class="empty" id="failures-none" hidden>No failed rows match the filters.</p>
<table id="failures-table">
<thead><tr><th>row</th><th>id</th><th class="run-col">run</th><th>kind</th><th>retryable</th>
<th>message</th></tr></thead>
<tbody id="failures-body"></tbody>
</table>
<nav class="pager" id="failures-pager" aria-label="pages of failed rows"></nav>
</section>
</div>
<footer>Every row, with all its columns, is in {manifest} (<code>manifest.parquet</code>,
<code>manifest.csv</code>, beside this page). Costs: credits and USD as the API reported them
(USD as credits at {CREDITS_PER_USD:,} a dollar where it reported none); estimates: the price
table in <code>i2v/api/prices.py</code>.</footer>
"""


#: Runs listed open on the destination's page; more are folded away.
RUNS_SHOWN_OPEN = 8


def _runs_table(summary: ReportSummary, href: Href) -> str:
    """The destination's runs: each one's rows and costs, with a link to its own report."""
    e = _escape
    lines = []
    for totals, key in summary.runs:
        link = _link(href(key)) if key else None
        name = e(totals.run or "(no run)")
        cell = f'<a href="{e(link)}">{name}</a>' if link else name
        compare_key = summary.comparisons.get(totals.run)
        compare = _link(href(compare_key)) if compare_key else None
        if compare:
            cell += f' <a class="compare" href="{e(compare)}">models side by side</a>'
        lines.append(
            f'<tr data-run="{e(totals.run)}"><td class="run">{cell}</td><td>{totals.total:,}</td>'
            f"<td>{totals.completed:,}</td><td>{totals.failed:,}</td><td>{totals.skipped:,}</td>"
            f'<td class="credits">{e(credits(totals.credits_used))}</td>'
            f'<td class="usd">{e(dollars(totals.usd_spent))}</td>'
            f'<td class="estimate">{e(_estimate(totals.estimated_credits))}</td></tr>'
        )
    opened = " open" if len(summary.runs) <= RUNS_SHOWN_OPEN else ""
    return f"""<details id="runs"{opened}><summary>Runs ({len(summary.runs):,}): the rows whose latest outcome each
produced, what they cost, and each run's own report (and a comparison's models side by side)</summary>
<table id="runs-table">
<thead><tr><th>run</th><th>rows</th><th>completed</th><th>failed</th><th>skipped</th><th>credits used</th>
<th>USD</th><th>estimated</th></tr></thead>
<tbody>{"".join(lines)}</tbody>
</table>
</details>"""


def _estimate(amount: float) -> str:
    return f"{credits(amount)} credits ({dollars(amount / CREDITS_PER_USD)})"


def _page_row(row: Mapping[str, Any], href: Href) -> list[Any]:
    """One manifest row as the page keeps it: the values of :data:`COLUMNS`, plain JSON."""
    values = {name: _plain(row.get(name)) for name in COLUMNS}
    values["video"] = _link(href(_text(row.get("video_uri"))))
    values["thumb"] = _link(href(_text(row.get("thumbnail_uri"))))
    values["image"] = _image(row.get("image_url"), href)
    values["mismatch"] = _flag(row.get("mismatch"))
    values["status"] = str(values["status"] or "unknown")
    for name in ("id", "prompt", "error_kind", "error_message", "model", "params", "run"):
        if values[name] is not None and not isinstance(values[name], str):
            values[name] = str(values[name])
    # Costs where something was paid: what the API reported, and what the price table expected.
    paid = values["status"] == "completed" or values["credits_used"] is not None
    values["usd"] = _rounded(row_usd(row)) if paid else None
    values["estimate"] = row_estimate(row) if paid else None
    return [values[name] for name in COLUMNS]


def _rounded(usd: float | None) -> float | None:
    return None if usd is None else round(usd, 6)


def _image(value: Any, href: Href) -> str | None:
    """The link to a row's input image: a URL, or its copy under ``inputs/`` in the destination.

    A data URI (the manifest keeps only its type and size) or a path relative to the
    user's CSV (an invalid row's cell) names nothing the page can show.
    """
    ref = _text(value)
    if ref is None:
        return None
    try:
        scheme = urlsplit(ref).scheme.lower()
    except ValueError:
        return None
    if scheme == "data" or (not scheme and not ref.startswith(("/", "inputs/"))):
        return None
    return _link(href(ref))


def _plain(value: Any) -> Any:
    """A cell as a JSON value: None, NaN, pandas' NA and NaT become null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item())
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def _text(value: Any) -> str | None:
    plain = _plain(value)
    return str(plain) if plain not in (None, "") else None


def _flag(value: Any) -> str | None:
    """The mismatch column as text, or None when it is empty."""
    plain = _plain(value)
    if plain is None or plain is False or plain == "":
        return None
    if plain is True:
        return "mismatch"
    return str(plain).strip() or None


def _link(url: str | None) -> str | None:
    """A link the page may use: relative, http(s) or file; anything else (``javascript:``) is dropped."""
    if not url or any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url if scheme in _SAFE_SCHEMES else None


def _json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: it cannot close it or open a comment."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
