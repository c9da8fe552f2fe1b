"""The comparison view of a run that compared models: ``runs/<run>/compare.html``.

One line per input row: its image, its prompt, then its videos side by side, one column
per compared model, each with its duration, resolution, credits and generation time
under it (or why it has no video). The page is static HTML: no script runs, every value
from the rows is escaped, links with a scheme other than http(s) or file are dropped
(:func:`i2v.report.links.relative_href` makes them), and a Content-Security-Policy pins
it to its own inline style by hash. Videos load only when played (``preload="none"``,
the thumbnail as poster), so a large run's page stays light.

Rows are read once, in row order: a manifest holds a row's pairs next to each other, so
only one input row's pairs are held at a time.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from i2v.api.prices import credits
from i2v.report.links import Href, relative_href
from i2v.storage.destination import Destination

STYLE = """
:root { color-scheme: light dark; --line: #dde1e7; --muted: #5d6470; --bad: #c62828; }
body { margin: 16px; font: 14px/1.45 system-ui, sans-serif; }
h1 { font-size: 20px; margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid var(--line); padding: 8px; vertical-align: top; text-align: left; }
th { font-size: 13px; overflow-wrap: anywhere; }
td.input img { max-width: 100%; max-height: 180px; display: block; }
td.input p { margin: 6px 0 0; color: var(--muted); font-size: 12px; }
video { width: 100%; max-height: 240px; background: #000; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0 8px; margin: 6px 0 0; font-size: 12px; }
dt { color: var(--muted); } dd { margin: 0; font-variant-numeric: tabular-nums; }
.failed { color: var(--bad); font-size: 12px; overflow-wrap: anywhere; }
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"style-src {_csp_hash(STYLE)}",
        "img-src 'self' file: http: https: data: blob:",
        "media-src 'self' file: http: https: data: blob:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
_SAFE_SCHEMES = ("", "http", "https", "file")


def comparison_key(run: str) -> str:
    """Where a run's comparison view is kept in its destination."""
    return f"runs/{run}/compare.html"


def render_comparison(
    run: str, models: Sequence[str], rows: Iterable[Mapping[str, Any]], *, href: Href
) -> Iterator[str]:
    """The page, in pieces: a header, one table line per input row, the end."""
    e = _escape
    yield (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{e(CONTENT_SECURITY_POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>i2v comparison {e(run)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<h1>Model comparison, run <span id="run">{e(run)}</span></h1>\n'
        '<table id="comparison">\n<thead><tr><th>input</th>'
        + "".join(f'<th data-model="{e(model)}">{e(model)}</th>' for model in models)
        + "</tr></thead>\n<tbody>\n"
    )
    for index, pairs in itertools.groupby(rows, key=lambda row: row.get("row_index")):
        by_model = {str(row.get("model")): row for row in pairs}
        # A pair that failed validation keeps the image as written; a valid pair's names the kept copy.
        first = next((row for row in by_model.values() if row.get("row_key")), next(iter(by_model.values())))
        image = _link(href(_text(first.get("image_url"))))
        shown = f'<img src="{e(image)}" alt="input image" loading="lazy">' if image else ""
        cells = "".join(_cell(by_model.get(model), model, href) for model in models)
        yield (
            f'<tr data-row="{e(str(index))}"><td class="input">{shown}'
            f"<p>{e(_text(first.get('prompt')) or '')}</p></td>{cells}</tr>\n"
        )
    yield "</tbody>\n</table>\n</body>\n</html>\n"


def publish_comparison(dest: Destination, run: str, models: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Write the run's comparison view into the destination, atomically; returns its URI."""
    key = comparison_key(run)
    links = relative_href(dest.uri, report_key=key)
    writer = dest.open_writer(key, "text/html; charset=utf-8")
    try:
        for piece in render_comparison(run, models, rows, href=links):
            writer.write(piece.encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return dest.uri_for(key)


def _cell(row: Mapping[str, Any] | None, model: str, href: Href) -> str:
    e = _escape
    if row is None:
        return f'<td data-model="{e(model)}"></td>'
    video = _link(href(_text(row.get("video_uri"))))
    if video is None:
        why = _text(row.get("error_message")) or _text(row.get("status")) or "no video"
        return f'<td data-model="{e(model)}"><p class="failed">{e(why)}</p></td>'
    thumb = _link(href(_text(row.get("thumbnail_uri"))))
    poster = f' poster="{e(thumb)}"' if thumb else ""
    facts = (
        ("duration", _number(row.get("duration_s"), "{:.1f} s")),
        ("resolution", _resolution(row)),
        ("credits", _credits(row.get("credits_used"))),
        ("generation", _number(row.get("generation_seconds"), "{:.1f} s")),
    )
    listed = "".join(f'<dt>{name}</dt><dd data-fact="{name}">{e(value)}</dd>' for name, value in facts)
    return (
        f'<td data-model="{e(model)}"><video controls preload="none" src="{e(video)}"{poster}></video>'
        f"<dl>{listed}</dl></td>"
    )


def _number(value: Any, form: str) -> str:
    return form.format(value) if isinstance(value, int | float) and math.isfinite(value) else "–"


def _credits(value: Any) -> str:
    return credits(value) if isinstance(value, int | float) and math.isfinite(value) else "–"


def _resolution(row: Mapping[str, Any]) -> str:
    width, height = row.get("width"), row.get("height")
    return f"{width}×{height}" if isinstance(width, int) and isinstance(height, int) else "–"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return str(value) or None


def _link(url: str | None) -> str | None:
    if not url or any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return None
    scheme = url.split(":", 1)[0].lower() if ":" in url.split("/", 1)[0] else ""
    return url if scheme in _SAFE_SCHEMES else None


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
