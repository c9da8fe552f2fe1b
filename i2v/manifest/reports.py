"""A destination's report pages: each run's own, and the destination's (:mod:`i2v.report.page`).

A run's page, ``runs/<run>/report.html``, has that run's rows, one per input row, as its
manifest is assembled. The destination's page, ``report.html`` at the root, has every
row's latest outcome, read from the merged manifest (:mod:`i2v.manifest.merged`), with
the run that produced each, each run's rows and costs, and a link to each run's page. A
run that only skipped work done before, or a rerun of one row, adds to it and hides
nothing.

The merged manifest may be large: it is read a batch of rows at a time, twice (once for
the header's totals, once for the rows), so memory holds a batch and a few numbers per
run, never the table; the page itself is streamed into the destination.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq

from i2v.manifest.merged import ROOT
from i2v.manifest.run_table import open_parquet
from i2v.report.comparison import comparison_key
from i2v.report.links import Href
from i2v.report.page import publish_report
from i2v.report.page_cards import COLUMNS
from i2v.report.page_header import ReportSummary
from i2v.report.summary import RunTotals, Summary, Tally
from i2v.storage.destination import Destination

#: The destination's page, at its root.
DESTINATION_REPORT = "report.html"
#: Rows of the merged manifest turned into Python values at a time.
BATCH_ROWS = 4096
#: The manifest columns the pages read (others are left unread).
READ_COLUMNS = (
    *(name for name in COLUMNS if name not in ("video", "thumb", "image", "usd", "estimate")),
    "video_uri",
    "thumbnail_uri",
    "image_url",
    "usd_spent",
)
#: The columns the header's totals need.
TALLY_COLUMNS = (
    "row_index",
    "id",
    "status",
    "error_kind",
    "error_message",
    "retryable",
    "credits_used",
    "usd_spent",
    "video_bytes",
    "generation_seconds",
    "model",
    "params",
    "run",
)
_RUN_FILE = re.compile(r"^runs/([^/]+)/(manifest\.parquet|report\.html|compare\.html)$")


def run_report_key(run: str) -> str:
    """Where a run's own page lives."""
    return f"runs/{run}/report.html"


def publish_run_report(
    dest: Destination,
    run: str,
    summary: Summary,
    rows: Iterable[Mapping[str, Any]],
    *,
    href: Href | None = None,
    written_at: datetime | None = None,
) -> str:
    """Write the run's own page from its rows (read once, one at a time); returns its URI.

    Its header links the destination's page. ``href`` defaults to links relative to the page.
    """
    page = ReportSummary.of(
        summary, run=run, destination=dest.uri, written_at=written_at, destination_report=DESTINATION_REPORT
    )
    return publish_report(dest, page, rows, key=run_report_key(run), href=href)


def publish_destination_report(
    dest: Destination, *, href: Href | None = None, written_at: datetime | None = None
) -> str | None:
    """Write the destination's page from its merged manifest; returns its URI (None: no merged manifest yet).

    ``href`` defaults to links relative to the page.
    """
    with dest.local_file(ROOT) as path:
        if path is None:
            return None
        with open_parquet(path) as table:
            present = set(table.schema_arrow.names)
            tally = Tally(by_run=True)
            for record in _records(table, [name for name in TALLY_COLUMNS if name in present]):
                tally.add(record)
            listed, compared = _runs_with_files(dest)
            by_run = {totals.run: totals for totals in tally.runs()}
            runs = [
                (by_run.get(run) or RunTotals(run=run), run_report_key(run) if listed.get(run) else None)
                for run in sorted({*by_run, *listed})
            ]
            page = ReportSummary.of_destination(
                tally.summary(),
                runs,
                destination=dest.uri,
                written_at=written_at,
                comparisons={run: comparison_key(run) for run in sorted(compared)},
            )
            rows = _records(table, [name for name in dict.fromkeys(READ_COLUMNS) if name in present])
            return publish_report(dest, page, rows, key=DESTINATION_REPORT, href=href)


def _records(table: pq.ParquetFile, columns: list[str]) -> Iterator[dict[str, Any]]:
    """The table's rows as dicts of ``columns``, a batch at a time."""
    for batch in table.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False):
        yield from batch.to_pylist()


def _runs_with_files(dest: Destination) -> tuple[dict[str, bool], set[str]]:
    """The destination's runs (with a manifest or a page) and whether each has its page; runs with a comparison view."""
    runs: dict[str, bool] = {}
    compared: set[str] = set()
    for key in dest.list_sizes("runs/"):
        match = _RUN_FILE.match(key)
        if not match:
            continue
        run, name = match.groups()
        if name == "compare.html":
            compared.add(run)
            continue
        runs[run] = runs.get(run, False) or name == "report.html"
    return runs, compared
