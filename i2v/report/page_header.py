"""The report page's header: its totals, its scope, the destination's runs, and the page's frame.

:class:`ReportSummary` is what the header says about one run, or about the destination
(every row's latest outcome, with each run's rows and costs and the key of its report).
:func:`page_head` writes everything of the page before its rows: the document's head
with its Content-Security-Policy and stylesheet, the header's totals, the runs table on
the destination's page, and the empty filters, grid and failures table the page's script
fills. Every value from the data is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from i2v.api.prices import CREDITS_PER_USD, credits
from i2v.report.links import Href, safe_link
from i2v.report.page_assets import CONTENT_SECURITY_POLICY, STYLE
from i2v.report.summary import RunTotals, Summary, dollars


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
            **_totals(summary),
            wall_s=summary.wall_s,
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
            **_totals(summary),
            written_at=written_at,
            scope="destination",
            runs=tuple(runs),
            comparisons=dict(comparisons or {}),
        )


def _totals(summary: Summary) -> dict[str, Any]:
    """The header's counts, costs and generation times, as a run's and a destination's page share them."""
    return {
        "total": summary.total,
        "completed": summary.completed,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "credits_used": summary.credits_used,
        "usd_spent": summary.usd_spent,
        "estimated_credits": summary.estimated_credits,
        "generation_p50_s": summary.generation_p50_s,
        "generation_p95_s": summary.generation_p95_s,
    }


def page_head(summary: ReportSummary, href: Href) -> str:
    """The page up to its rows: head, header with totals (and runs), and the frame its script fills."""
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
        other = safe_link(href(summary.destination_report)) if summary.destination_report else None
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
        link = safe_link(href(key)) if key else None
        name = e(totals.run or "(no run)")
        cell = f'<a href="{e(link)}">{name}</a>' if link else name
        compare_key = summary.comparisons.get(totals.run)
        compare = safe_link(href(compare_key)) if compare_key else None
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
