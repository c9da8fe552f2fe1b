"""The run's report page: the HTML it renders, and the page at work in headless Chromium."""

from __future__ import annotations

import html.parser
import json
import math
import os
import re
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from i2v.api.prices import estimate
from i2v.emulator.render import render_video
from i2v.manifest import merged
from i2v.manifest import reports as reports_of
from i2v.manifest import run_table as manifest
from i2v.media.probe import probe
from i2v.outcomes import RowOutcome
from i2v.report.links import relative_href
from i2v.report.page import PAGE_SIZE, publish_report, render_report
from i2v.report.page_assets import CONTENT_SECURITY_POLICY, SCRIPT, STYLE
from i2v.report.page_cards import COLUMNS
from i2v.report.page_header import ReportSummary
from i2v.report.summary import Tally, console_summary, markdown
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination

ARTIFACTS = Path(__file__).resolve().parent.parent / "out" / "test-artifacts"
EVIL = '</script><script>window.__pwned = 1</script><!-- <img src=x onerror="window.__pwned = 2"> &amp; \u2028'
MISMATCH = "duration 4.0 s, asked for 5 s"


# --- rows like a manifest's -------------------------------------------------------------


def manifest_rows(root: str, n: int) -> list[dict[str, Any]]:
    """``n`` manifest rows whose objects would live under ``root``.

    Of every 9 rows: 6 completed, 1 failed ``timeout``, 1 failed ``rejected`` (or, every
    third time, ``invalid_input``), 1 skipped ``already_done``. Row 7's prompt is hostile;
    row 5 carries a mismatch. Failed rows have NaN where a number would be. Completed rows
    cost 210,000 credits, and the provider said $0.105 (a skipped row carries what an
    earlier run paid); every row's input image is kept under ``inputs/``.
    """
    rows = []
    for i in range(n):
        slot = i % 9
        status = "completed" if slot < 6 else "skipped" if slot == 8 else "failed"
        kind = {6: "timeout", 7: "rejected" if i % 27 != 7 else "invalid_input", 8: "already_done"}.get(slot)
        has_video = status != "failed"
        rows.append(
            {
                "row_key": f"key{i}",
                "row_index": i,
                "id": f"clip-{i:05d}",
                "image_url": f"inputs/{i % 4}.png",
                "prompt": EVIL if i == 7 else f"a slow zoom over picture {i}, golden light",
                "model": "alibaba/wan2.5-i2v-preview",
                "params": '{"duration": 5, "resolution": "480p"}',
                "status": status,
                "error_kind": kind,
                "error_message": None if status == "completed" else f"{kind} on row {i}",
                "retryable": {"timeout": True, "rejected": False}.get(kind or ""),
                "video_uri": f"{root}/videos/clip-{i:05d}.mp4" if has_video else None,
                "thumbnail_uri": f"{root}/thumbs/clip-{i:05d}.jpg" if has_video else None,
                "duration_s": 4.0 if has_video else math.nan,
                "width": 160 if has_video else None,
                "height": 90 if has_video else None,
                "credits_used": 210_000.0 if has_video else math.nan,
                "usd_spent": 0.105 if has_video else math.nan,
                "generation_seconds": 91.5 if status == "completed" else math.nan,
                "mismatch": MISMATCH if i == 5 else "",
                "run": "run-1",
            }
        )
    return rows


def summary_of(rows: list[dict[str, Any]], *, run: str = "run-1", destination: str = "/data/out") -> ReportSummary:
    tally = Tally()
    for row in rows:
        tally.add(row)
    return ReportSummary.of(tally.summary(wall_s=754.2), run=run, destination=destination)


def embedded(page: str) -> dict[str, Any]:
    """The page's JSON block, decoded."""
    match = re.search(r'<script type="application/json" id="i2v-data">(.*?)</script>', page, re.DOTALL)
    assert match is not None, "the page has its data block"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def records(page: str) -> list[dict[str, Any]]:
    data = embedded(page)
    return [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]


class _Elements(html.parser.HTMLParser):
    """Tags, ids and text of a page, as the HTML parser (not a regex) sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "input", "br", "img"):
            self._open.append(dict(attrs).get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for name in self._open:
            if name:
                self.text_by_id[name] = self.text_by_id.get(name, "") + data


def parsed(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


# --- the HTML ---------------------------------------------------------------------------


def test_user_text_stays_text() -> None:
    """Prompts, ids, messages and the run's name cannot become markup or end the data block."""
    rows = manifest_rows("/data/out", 9)
    rows[3]["id"] = "<b>bold</b>"
    rows[6]["error_message"] = "</SCRIPT ><script>alert(1)</script>"
    page = render_report(
        summary_of(rows, run='<i>x</i> & "y"', destination="/data/<out>"), rows, href=relative_href("/data/out")
    )
    elements = parsed(page)
    assert [tag for tag, _ in elements.tags].count("script") == 2, "the data block and the page's script only"
    assert "<b>" not in page
    assert "alert(1)" in page
    assert "<script>alert" not in page.lower()
    assert page.lower().count("</script") == 2
    assert "<!--" not in page
    assert elements.text_by_id["run"] == '<i>x</i> & "y"'
    assert elements.text_by_id["destination"] == "/data/<out>"
    kept = records(page)
    assert kept[7]["prompt"] == EVIL
    assert kept[3]["id"] == "<b>bold</b>"
    assert kept[6]["error_message"] == "</SCRIPT ><script>alert(1)</script>"


def test_header_counts_match_the_summary() -> None:
    """The totals shown are the summary's: rows, statuses, credits, USD, the estimate beside them, times."""
    rows = manifest_rows("/data/out", 27)
    page = render_report(summary_of(rows), rows, href=relative_href("/data/out"))
    values = dict(re.findall(r'<dd data-total="(\w+)">([^<]*)</dd>', page))
    each = estimate("alibaba/wan2.5-i2v-preview", {"duration": 5, "resolution": "480p"}).credits
    assert each == 422_535
    assert values == {
        "total": "27",
        "completed": "18",
        "failed": "6",
        "skipped": "3",
        "credits": "3,780,000",
        "usd": "$1.89",
        "estimate": "7,605,630 credits ($3.80)",
        "wall": "12 min 34 s",
        "generation": "1 min 32 s / 1 min 32 s",
    }


def test_rows_travel_as_paged_json() -> None:
    """Every row is in the JSON block, in input order, with the page size and plain JSON values."""
    rows = manifest_rows("/data/out", 20)
    page = render_report(summary_of(rows), rows, href=relative_href("/data/out"), page_size=7)
    data = embedded(page)
    assert data["pageSize"] == 7
    assert tuple(data["columns"]) == COLUMNS
    kept = records(page)
    assert [r["row_index"] for r in kept] == list(range(20))
    assert kept[0]["video"] == "videos/clip-00000.mp4"
    assert kept[0]["thumb"] == "thumbs/clip-00000.jpg"
    assert kept[6]["video"] is None, "a missing URI is null"
    assert kept[6]["credits_used"] is None, "NaN is null"
    assert kept[6]["error_kind"] == "timeout"
    assert kept[6]["retryable"] is True
    assert kept[5]["mismatch"] == MISMATCH
    assert all(r["mismatch"] is None for r in kept if r["row_index"] != 5), "an empty mismatch is no flag"
    assert "<img" not in page, "cards are built a page at a time, not in the HTML"
    assert "<article" not in page


def test_absent_columns_and_odd_values_are_empty() -> None:
    """A row with only a few columns (no mismatch, no URIs) still renders, and odd scalars become JSON."""
    rows: list[dict[str, Any]] = [
        {"row_index": np.int64(0), "id": "a", "prompt": "p", "status": "failed", "error_kind": pd.NA},
        {"row_index": 1, "id": None, "prompt": "q", "status": None, "credits_used": np.float64("nan")},
        {"row_index": 2, "status": "completed", "mismatch": True, "width": np.int32(640)},
    ]
    kept = records(render_report(summary_of([]), rows, href=lambda uri: uri))
    assert kept[0]["row_index"] == 0
    assert kept[0]["error_kind"] is None
    assert kept[0]["mismatch"] is None
    assert kept[1]["status"] == "unknown"
    assert kept[1]["credits_used"] is None
    assert kept[2]["mismatch"] == "mismatch"
    assert kept[2]["width"] == 640


def test_unsafe_links_are_dropped() -> None:
    """Whatever ``href`` returns, the page links only relative, http(s) and file URLs."""
    links = {
        "a": "javascript:alert(1)",
        "b": "JAVASCRIPT:alert(1)",
        "c": "data:text/html,<script>alert(1)</script>",
        "d": "java\nscript:alert(1)",
        "g": "\x01javascript:alert(1)",
        "e": "https://bucket.example/videos/x.mp4?X-Amz-Signature=abc&X-Amz-Expires=3600",
        "f": "videos/x.mp4",
    }
    rows = [{"row_index": i, "status": "completed", "video_uri": key} for i, key in enumerate(links)]
    kept = records(render_report(summary_of([]), rows, href=lambda uri: links.get(uri or "")))
    assert [r["video"] for r in kept] == [None, None, None, None, None, links["e"], "videos/x.mp4"]


def test_relative_links_for_local_and_s3_destinations() -> None:
    """Links are relative to where the report sits; objects elsewhere get a file URL or nothing."""
    local = relative_href("/data/out/")
    assert local("/data/out/videos/a b.mp4") == "videos/a%20b.mp4"
    assert local("/elsewhere/videos/x.mp4") == "file:///elsewhere/videos/x.mp4"
    assert local(None) is None
    assert local("") is None
    nested = relative_href("s3://bucket/prefix", report_key="runs/r1/report.html")
    assert nested("s3://bucket/prefix/thumbs/x.jpg") == "../../thumbs/x.jpg"
    assert nested("s3://other/thumbs/x.jpg") is None
    assert nested("https://cdn.example/x.jpg") == "https://cdn.example/x.jpg"


def test_outputs_named_by_key_link_beside_the_report() -> None:
    """A manifest's keys (``videos/x.mp4``) link relative to the report; a key climbing out of the root gets none."""
    local = relative_href("/data/out")
    assert local("videos/a b.mp4") == "videos/a%20b.mp4"
    nested = relative_href("s3://bucket/prefix", report_key="runs/r1/report.html")
    assert nested("thumbs/x.jpg") == "../../thumbs/x.jpg"
    assert local("../elsewhere/x.mp4") is None
    assert local("javascript:alert(1)") is None


def test_policy_pins_the_page_to_its_own_script_and_style() -> None:
    """The CSP allows the inline script and style by hash, nothing from the network, and no other script."""
    rows = manifest_rows("/data/out", 3)
    page = render_report(summary_of(rows), rows, href=relative_href("/data/out"))
    policy = next(
        attrs["content"]
        for tag, attrs in parsed(page).tags
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert policy == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "connect-src" not in policy
    assert f"<script>{SCRIPT}</script>" in page
    assert f"<style>{STYLE}</style>" in page
    tags = parsed(page).tags
    assert not [a for t, a in tags if t in ("link", "img", "iframe") or (t == "script" and "src" in a)]
    assert not re.search(r"https?://", SCRIPT + STYLE), "the page's own code fetches nothing"


def test_publish_writes_the_report_into_the_destination(tmp_path: Path) -> None:
    """``publish_report`` streams the page into the destination with links relative to it."""
    dest = LocalDestination(tmp_path / "dest")
    rows = manifest_rows(dest.uri, 30)
    uri = publish_report(dest, summary_of(rows, destination=dest.uri), iter(rows))
    assert uri == str(tmp_path / "dest" / "report.html")
    page = Path(uri).read_text(encoding="utf-8")
    assert len(records(page)) == 30
    assert records(page)[0]["video"] == "videos/clip-00000.mp4"
    assert not list((tmp_path / "dest").glob(".*")), "no partial file left behind"


def test_publish_to_s3_for_a_static_site(s3_client: Any, bucket: str) -> None:
    """On S3 the report is an HTML object at the prefix, its links relative for a static website."""
    dest = S3Destination(s3_client, bucket, "runs-out")
    rows = manifest_rows(dest.uri, 12)
    uri = publish_report(dest, summary_of(rows, destination=dest.uri), rows)
    assert uri == f"s3://{bucket}/runs-out/report.html"
    stored = s3_client.get_object(Bucket=bucket, Key="runs-out/report.html")
    assert stored["ContentType"] == "text/html; charset=utf-8"
    page = stored["Body"].read().decode()
    assert records(page)[0]["thumb"] == "thumbs/clip-00000.jpg"
    assert len(records(page)) == 12


def test_ten_thousand_rows_render_quickly_and_compactly() -> None:
    """A 10,000-row report is one pass over the rows: a fraction of a second, a few MB, no card in the HTML."""
    rows = manifest_rows("/data/out", 10_000)
    started = time.perf_counter()
    page = render_report(summary_of(rows), iter(rows), href=relative_href("/data/out"))
    seconds = time.perf_counter() - started
    print(f"10,000 rows: {len(page.encode()) / 1e6:.1f} MB of HTML in {seconds:.2f} s")
    assert seconds < 5.0, "linear in the rows (0.2 s on an idle 2-core machine)"
    assert len(page.encode()) < 6_000_000
    assert len(embedded(page)["rows"]) == 10_000
    assert page.count("<img") == 0
    assert page.count("<video") == 0


# --- costs, input images, the destination's page ---------------------------------------

WAN_480P_5S = 422_535  # credits the price table expects of a 5 s 480p wan2.5 video


def test_rows_carry_their_cost_in_credits_and_usd_and_the_estimate() -> None:
    """Each paid row embeds its USD (the provider's, else credits at 2,000,000 a dollar) and its estimate."""
    rows = manifest_rows("/data/out", 9)
    rows[1]["usd_spent"] = None  # the provider said nothing in USD: 210,000 credits are $0.105
    rows[2]["credits_used"] = 400_000.0
    rows[2]["usd_spent"] = 0.3
    rows[3]["params"] = '{"duration": 10, "resolution": "720p"}'
    kept = records(render_report(summary_of(rows), rows, href=relative_href("/data/out")))
    assert [r["usd"] for r in kept[:3]] == [0.105, 0.105, 0.3]
    assert kept[0]["credits_used"] == 210_000
    assert kept[0]["estimate"] == WAN_480P_5S
    assert kept[3]["estimate"] == estimate("alibaba/wan2.5-i2v-preview", {"duration": 10, "resolution": "720p"}).credits
    assert kept[6]["status"] == "failed"
    assert (kept[6]["usd"], kept[6]["estimate"]) == (None, None), "a failed row was not paid for"
    assert kept[8]["status"] == "skipped"
    assert (kept[8]["credits_used"], kept[8]["usd"]) == (210_000, 0.105), "what an earlier run paid for the video"


def test_the_summary_counts_usd_and_the_estimate_by_run() -> None:
    """A tally adds up credits, USD and the estimate of completed rows, for the whole and for each run."""
    rows = manifest_rows("/data/out", 18)
    for row in rows[9:]:
        row["run"] = "run-2"
    rows[10]["usd_spent"] = None
    rows[11]["model"] = None  # nothing to estimate from
    tally = Tally(by_run=True)
    for row in rows:
        tally.add(row)
    summary = tally.summary()
    assert (summary.completed, summary.credits_used) == (12, 12 * 210_000)
    assert summary.usd_spent == pytest.approx(12 * 0.105)
    assert summary.estimated_credits == 11 * WAN_480P_5S
    first, second = tally.runs()
    assert (first.run, first.total, first.completed, first.failed, first.skipped) == ("run-1", 9, 6, 2, 1)
    assert (second.run, second.completed, second.estimated_credits) == ("run-2", 6, 5 * WAN_480P_5S)
    assert first.usd_spent == pytest.approx(0.63)
    assert second.credits_used == 6 * 210_000
    assert Tally().runs() == [], "only a tally by run keeps runs"
    text = console_summary(summary, manifest_uri="/data/out/runs/r/manifest.parquet")
    assert "cost: 2,520,000 credits ($1.26); estimated 4,647,885 credits ($2.32)" in text
    table = markdown(summary, dest_uri="/data/out", manifest_uri="/data/out/runs/r/manifest.parquet")
    assert "| 2,520,000 | $1.26 | 4,647,885 ($2.32) |" in table


def test_cards_link_their_input_image_from_where_the_page_lives() -> None:
    """A row's input image: a URL as it is, a kept copy under ``inputs/`` relative to the page, else none."""
    images = [
        "inputs/ab12.png",
        "https://images.example/cat.jpg",
        "data:image/png;base64,…(1234 chars)",
        "images/next-to-the-csv.png",  # an invalid row's cell: relative to the user's CSV, not the destination
        "s3://bucket/prefix/inputs/cd34.jpg",
        "s3://other-bucket/x.png",
        "javascript:alert(1)",
        "",
    ]
    rows = [{"row_index": i, "status": "failed", "image_url": image} for i, image in enumerate(images)]
    at_root = records(render_report(summary_of([]), rows, href=relative_href("s3://bucket/prefix")))
    nested = relative_href("s3://bucket/prefix", report_key="runs/r1/report.html")
    in_run = records(render_report(summary_of([]), rows, href=nested))
    assert [r["image"] for r in at_root] == [
        "inputs/ab12.png",
        "https://images.example/cat.jpg",
        None,
        None,
        "inputs/cd34.jpg",
        None,
        None,
        None,
    ]
    assert [r["image"] for r in in_run][:2] == ["../../inputs/ab12.png", "https://images.example/cat.jpg"]
    assert in_run[4]["image"] == "../../inputs/cd34.jpg"


def _outcome(key: str, index: int, status: str, run: str, **fields: Any) -> RowOutcome:
    """An outcome of work ``key`` by ``run``; a completed one has its video, 210,000 credits and $0.105."""
    done = status == "completed" or fields.get("error_kind") == "already_done"
    values: dict[str, Any] = {
        "row_key": key,
        "row_index": index,
        "id": key,
        "image_url": f"inputs/{key}.png",
        "prompt": f"Prompt {key}",
        "model": "alibaba/wan2.5-i2v-preview",
        "route": "universal",
        "params": '{"duration": 5, "resolution": "480p"}',
        "status": status,
        "video_uri": f"videos/{key}.mp4" if done else None,
        "thumbnail_uri": f"thumbs/{key}.jpg" if done else None,
        "width": 160 if done else None,
        "height": 90 if done else None,
        "credits_used": 210_000.0 if done else None,
        "usd_spent": 0.105 if done else None,
        "run": run,
        **fields,
    }
    return RowOutcome(**values)


FIRST, SECOND, RERUN = "20260101T000000Z-first", "20260102T000000Z-second", "20260103T000000Z-rerun"


def _three_runs(dest: LocalDestination, *, reports: bool = True) -> None:
    """Run one makes a and b and fails c; run two skips them and makes d; a rerun of c makes it.

    Each run's manifest is merged as a run does, and (with ``reports``) each run's page written
    but the first's (a run from before there were run pages).
    """
    rejected = {"error_kind": "generation_failed", "error_message": "moderation", "retryable": False}
    runs = {
        FIRST: [
            _outcome("a", 0, "completed", FIRST),
            _outcome("b", 1, "completed", FIRST, width=90, height=160),
            _outcome("c", 2, "failed", FIRST, **rejected),
        ],
        SECOND: [
            _outcome("a", 0, "skipped", SECOND, error_kind="already_done"),
            _outcome("b", 1, "skipped", SECOND, error_kind="already_done", width=90, height=160),
            _outcome("c", 2, "skipped", SECOND, **{**rejected, "error_message": "not retried: moderation"}),
            _outcome("d", 3, "completed", SECOND),
        ],
        RERUN: [_outcome("c", 0, "completed", RERUN)],
    }
    for run, outcomes in runs.items():
        manifest.write_manifest(dest, outcomes, run=run)
        merged.merge(dest)
        if reports and run != FIRST:
            tally = Tally()
            for outcome in outcomes:
                tally.add(outcome)
            reports_of.publish_run_report(dest, run, tally.summary(), (o.as_dict() for o in outcomes))


def test_the_destinations_page_has_every_rows_latest_outcome(tmp_path: Path) -> None:
    """After two runs and a one-row rerun, the root page has every row's latest outcome, its run and costs."""
    dest = LocalDestination(tmp_path / "dest")
    _three_runs(dest)
    uri = reports_of.publish_destination_report(dest)
    assert uri == str(tmp_path / "dest" / "report.html")
    page = Path(uri).read_text(encoding="utf-8")
    kept = {r["id"]: r for r in records(page)}
    assert {i: (r["status"], r["run"]) for i, r in kept.items()} == {
        "a": ("completed", FIRST),
        "b": ("completed", FIRST),
        "c": ("completed", RERUN),
        "d": ("completed", SECOND),
    }, "a run that only skipped work hides nothing; the rerun's one row is the latest for it"
    assert kept["a"]["video"] == "videos/a.mp4"
    assert kept["c"]["image"] == "inputs/c.png"
    assert (kept["d"]["usd"], kept["d"]["estimate"]) == (0.105, WAN_480P_5S)
    values = dict(re.findall(r'<dd data-total="(\w+)">([^<]*)</dd>', page))
    assert values == {
        "runs": "3",
        "total": "4",
        "completed": "4",
        "failed": "0",
        "skipped": "0",
        "credits": "840,000",
        "usd": "$0.42",
        "estimate": "1,690,140 credits ($0.85)",
    }
    table = {attrs["data-run"]: attrs for tag, attrs in parsed(page).tags if tag == "tr" and attrs.get("data-run")}
    assert list(table) == [FIRST, SECOND, RERUN]
    runs = re.findall(r'<tr data-run="([^"]+)"><td class="run">(.*?)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>', page)
    cells = {run: re.findall(r">([^<]*)</td>", rest) for run, _, rest in runs}
    assert cells[FIRST] == ["2", "2", "0", "0", "420,000", "$0.21", "845,070 credits ($0.42)"]
    assert cells[SECOND] == ["1", "1", "0", "0", "210,000", "$0.11", "422,535 credits ($0.21)"]
    assert cells[RERUN][:2] == ["1", "1"]
    links = {run: re.findall(r'href="([^"]+)"', cell) for run, cell, _ in runs}
    assert links == {FIRST: [], SECOND: [f"runs/{SECOND}/report.html"], RERUN: [f"runs/{RERUN}/report.html"]}


def test_a_runs_page_has_its_rows_and_links_from_its_folder(tmp_path: Path) -> None:
    """``runs/<run>/report.html`` has that run's rows only, its links climbing to the destination's objects."""
    dest = LocalDestination(tmp_path / "dest")
    _three_runs(dest)
    page = (tmp_path / "dest" / "runs" / SECOND / "report.html").read_text(encoding="utf-8")
    kept = records(page)
    assert [(r["id"], r["status"], r["error_kind"]) for r in kept] == [
        ("a", "skipped", "already_done"),
        ("b", "skipped", "already_done"),
        ("c", "skipped", "generation_failed"),
        ("d", "completed", None),
    ]
    assert kept[3]["video"] == "../../videos/d.mp4"
    assert kept[3]["thumb"] == "../../thumbs/d.jpg"
    assert kept[2]["image"] == "../../inputs/c.png"
    assert parsed(page).text_by_id["run"] == SECOND
    back = next(attrs for tag, attrs in parsed(page).tags if tag == "a" and attrs.get("id") == "destination-report")
    assert back["href"] == "../../report.html"
    values = dict(re.findall(r'<dd data-total="(\w+)">([^<]*)</dd>', page))
    assert (values["credits"], values["usd"], values["estimate"]) == ("210,000", "$0.11", "422,535 credits ($0.21)")


def test_the_destinations_page_reads_the_merged_manifest_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing the root page holds a batch of the merged manifest's rows in memory, never all of them."""
    monkeypatch.setattr(reports_of, "BATCH_ROWS", 1000)
    dest = LocalDestination(tmp_path / "dest")
    count = 12_000
    outcomes = [
        _outcome(f"k{i:06d}", i, "completed", FIRST, prompt=f"a slow zoom over picture {i}, golden light " * 3)
        for i in range(count)
    ]
    manifest.write_manifest(dest, outcomes, run=FIRST)
    merged.merge(dest)
    del outcomes

    tracemalloc.start()
    try:
        with manifest.open_parquet(tmp_path / "dest" / "manifest.parquet") as table:
            every = table.read(use_threads=False).to_pylist()
        _, whole = tracemalloc.get_traced_memory()
        del every
        tracemalloc.reset_peak()
        reports_of.publish_destination_report(dest)
        _, publishing = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"{count:,} rows: {whole / 1e6:.0f} MB as Python rows, {publishing / 1e6:.0f} MB at most while publishing")
    assert publishing < whole / 4
    assert len(records((tmp_path / "dest" / "report.html").read_text(encoding="utf-8"))) == count


# --- in a browser -----------------------------------------------------------------------

#: Debian's Chromium (Playwright's own browser download needs the internet). `make test` installs it.
CHROMIUM = "/usr/bin/chromium"
#: Flags that keep a headless Chromium off the network on a machine that has none.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_CHROMIUM = (
    "install it as root with `apt-get update && apt-get install -y chromium` "
    "(`make test` does this when run as root on Debian)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for this module's tests (a failure, never a skip, if it is missing)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the report page's browser tests need Debian's Chromium at {CHROMIUM}: {INSTALL_CHROMIUM}", pytrace=False
        )
    started = time.perf_counter()
    with sync_playwright() as playwright:
        try:
            running = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"{CHROMIUM} did not start ({INSTALL_CHROMIUM}): {exc}", pytrace=False)
        try:
            print(f"Chromium {running.version} up in {time.perf_counter() - started:.2f} s")
            yield running
        finally:
            running.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A tab in a fresh browser context (its own profile), closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes]]:
    """A few real four-second MP4s (H.264, as the pipeline stores them) and their real thumbnails."""
    folder = tmp_path_factory.mktemp("media")
    made = []
    for seed in range(3):
        path = folder / f"{seed}.mp4"
        render_video(None, seconds=4, aspect_ratio="16:9", short_side=90, fps=12, seed=seed, out=path)
        thumb = probe(path).thumbnail_jpeg
        assert thumb is not None
        made.append((path.read_bytes(), thumb))
    return made


def lay_out(root: Path, rows: list[dict[str, Any]], media: list[tuple[bytes, bytes]]) -> None:
    """Put each row's video and thumbnail where its URIs say, and its input image under ``root``."""
    for row in rows:
        video, thumb = media[row["row_index"] % len(media)]
        for column, data in (("video_uri", video), ("thumbnail_uri", thumb)):
            if row.get(column):
                path = Path(row[column])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        image = root / row["image_url"]
        if row.get("image_url", "").startswith("inputs/") and not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 36), (40 * (row["row_index"] % 6), 120, 200)).save(image)


class Seen:
    """What a tab reported while a test drove it: its problems, and every URL it requested."""

    def __init__(self, page: Page) -> None:
        #: Console errors and failed asserts (Chromium's own error log, CSP reports included) and
        #: uncaught exceptions, as text.
        self.errors: list[str] = []
        #: Every URL the page requested (Playwright leaves out ``data:`` URLs).
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"exception: {exc}"))
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.errors.append(f"console: {message.text} {message.location['url']}".strip())


def open_report(page: Page, report: Path) -> tuple[Seen, float]:
    """Show the report in ``page``, once its script has rendered; what it reports, and the seconds that took."""
    seen = Seen(page)
    started = time.perf_counter()
    page.goto(report.as_uri())
    page.wait_for_function("() => document.getElementById('count').dataset.matching !== undefined")
    return seen, time.perf_counter() - started


def expect_shown(page: Page, cards: int, matching: int, message: str | None = None) -> None:
    """The filters match ``matching`` rows and the document holds ``cards`` cards."""
    expect(page.locator("#count"), message).to_have_attribute("data-matching", str(matching))
    expect(page.locator("#grid .card"), message).to_have_count(cards)


def option_labels(page: Page, select: str) -> list[str]:
    return page.locator(f"#{select} option").all_text_contents()


def test_report_in_chromium(page: Page, media: list[tuple[bytes, bytes]], tmp_path: Path) -> None:
    """Opened from a file: cards show, filters change the count, a click plays the video, no errors, no network."""
    dest = LocalDestination(tmp_path / "dest")
    rows = manifest_rows(dest.uri, 36)  # 24 completed, 4 timeout, 2 rejected, 2 invalid_input, 4 skipped
    lay_out(tmp_path / "dest", rows, media)
    report = Path(publish_report(dest, summary_of(rows, destination=dest.uri), rows, page_size=24))

    seen, load_s = open_report(page, report)
    expect_shown(page, 24, 36, "the first page of cards, out of every row")
    images = page.locator("img").evaluate_all("images => images.map(i => i.loading)")
    assert images == ["lazy"] * 24, "a lazy picture on each card: its thumbnail, or a failed row's input image"
    assert page.evaluate("window.__pwned") is None, "the hostile prompt ran nothing"
    assert page.locator('.card[data-row="7"] .prompt').text_content() == EVIL
    assert page.locator('.card[data-row="5"] .flag').get_attribute("title") == MISMATCH
    expect(page.locator(".card .flag")).to_have_count(1)
    assert "timeout (4)" in option_labels(page, "f-kind")

    page.locator("nav.cards-pager button[title='next page']").first.click()
    expect_shown(page, 12, 36, "the second page holds the rest")

    page.select_option("#f-status", "failed")
    expect_shown(page, 8, 8)
    assert option_labels(page, "f-kind")[:1] == ["any kind (8)"]
    assert "timeout (4)" in option_labels(page, "f-kind")
    assert "already_done (0)" in option_labels(page, "f-kind")
    page.select_option("#f-kind", "timeout")
    expect_shown(page, 4, 4)
    expect(page.locator("#failures-body tr")).to_have_count(4)
    assert "any status (4)" in option_labels(page, "f-status")
    page.select_option("#f-status", "")
    page.select_option("#f-kind", "")
    page.locator("#f-flagged").check()
    expect_shown(page, 1, 1, "mismatches only")
    page.locator("#f-flagged").uncheck()
    page.locator("#kinds button").first.click()  # the commonest failure kind, one click away
    expect_shown(page, 4, 4)
    page.select_option("#f-status", "")
    page.select_option("#f-kind", "")
    page.locator("#f-text").fill("CLIP-0001")
    expect_shown(page, 10, 10)
    page.locator("#f-text").fill("")
    expect_shown(page, 24, 36)

    page.locator(".card[data-row='0'] button.thumb").click()
    expect(page.locator("video")).to_have_count(1)
    playing = page.wait_for_function(
        "() => { const v = document.querySelector('.card[data-row=\"0\"] video');"
        " return v && !v.paused && v.currentTime > 0 && v.readyState >= 2 && v.videoWidth; }"
    ).json_value()
    assert playing == 160, "the real MP4 decodes and plays in the card"
    page.locator(".card[data-row='1'] button.thumb").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('.card[data-row=\"1\"] video'); return v && !v.paused; }"
    )
    # One video at a time: the first pauses when the second starts (its 'play' event is a task away).
    page.wait_for_function("() => document.querySelector('.card[data-row=\"0\"] video').paused")
    assert not page.evaluate("document.querySelector('.card[data-row=\"0\"] video').ended"), "paused, not over"

    page.evaluate("window.scrollTo(0, 0)")
    path = ARTIFACTS / "report.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    print(f"report loaded in {load_s:.2f} s; screenshot: {path}")
    assert seen.errors == []
    assert any(url.endswith("/thumbs/clip-00000.jpg") for url in seen.requests), seen.requests
    # No network: the report and its media are files; the video controls' icons are data: URLs.
    assert {url.split(":", 1)[0] for url in seen.requests} <= {"file", "data"}, seen.requests


def test_ten_thousand_rows_in_chromium(page: Page, media: list[tuple[bytes, bytes]], tmp_path: Path) -> None:
    """At 10,000 rows the page keeps one page of cards in the document and filters the whole table."""
    dest = LocalDestination(tmp_path / "dest")
    rows = manifest_rows(dest.uri, 10_000)
    lay_out(tmp_path / "dest", rows[:9], media)
    for row in rows[9:]:  # every thumbnail and video is one of the first nine rows' files
        for column in ("video_uri", "thumbnail_uri"):
            if row[column]:
                row[column] = rows[row["row_index"] % 9][column]
    report = Path(publish_report(dest, summary_of(rows, destination=dest.uri), rows))

    # Behaviour only: how fast it loads depends on the machine and is no check of a test.
    seen, _ = open_report(page, report)
    expect_shown(page, PAGE_SIZE, 10_000)
    assert page.locator("img").count() <= PAGE_SIZE
    page.select_option("#f-status", "failed")
    expect_shown(page, PAGE_SIZE, sum(r["status"] == "failed" for r in rows))
    page.select_option("#f-kind", "invalid_input")
    invalid = sum(r["error_kind"] == "invalid_input" for r in rows)
    expect_shown(page, min(PAGE_SIZE, invalid), invalid)
    assert seen.errors == []


def test_destination_report_in_chromium(page: Page, media: list[tuple[bytes, bytes]], tmp_path: Path) -> None:
    """The destination's page: filters by run and status, a failed card's input image, portrait beside landscape."""
    root = tmp_path / "dest"
    dest = LocalDestination(root)
    _three_runs(dest)
    later = "20260104T000000Z-later"
    rejected = {"error_kind": "generation_failed", "error_message": "moderation", "retryable": False}
    manifest.write_manifest(dest, [_outcome("e", 4, "failed", later, **rejected)], run=later)
    merged.merge(dest)
    video, _ = media[0]
    for key, size in (("a", (160, 90)), ("b", (90, 160)), ("c", (160, 90)), ("d", (160, 90))):
        (root / "videos").mkdir(parents=True, exist_ok=True)
        (root / "videos" / f"{key}.mp4").write_bytes(video)
        (root / "thumbs").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (200, 120, 40)).save(root / "thumbs" / f"{key}.jpg", "JPEG")
    (root / "inputs").mkdir(exist_ok=True)
    Image.new("RGB", (64, 96), (40, 120, 200)).save(root / "inputs" / "e.png")
    report = Path(reports_of.publish_destination_report(dest) or "")

    seen, _ = open_report(page, report)
    expect_shown(page, 5, 5, "every row's latest outcome, from four runs")
    assert option_labels(page, "f-run") == [
        "any run (5)",
        f"{later} (1)",
        f"{RERUN} (1)",
        f"{SECOND} (1)",
        f"{FIRST} (2)",
    ]
    page.select_option("#f-run", FIRST)
    expect_shown(page, 2, 2, "the rows whose latest outcome the first run made")
    assert page.locator("#grid .card").evaluate_all("cards => cards.map(c => c.dataset.id)") == ["a", "b"]
    assert option_labels(page, "f-status")[:2] == ["any status (2)", "completed (2)"]
    page.select_option("#f-status", "failed")
    expect_shown(page, 0, 0, "the first run's rows have no failure left")
    page.select_option("#f-run", "")
    expect_shown(page, 1, 1, "one failed row, from the latest run")
    expect(page.locator("#failures-body tr")).to_have_count(1)
    assert page.locator("#failures-body td.run-col").text_content() == later

    failed = page.locator('.card[data-id="e"]')
    picture = failed.locator(".media.input img")
    expect(picture).to_have_attribute("src", "inputs/e.png")
    picture.scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('.card[data-id=\"e\"] img').naturalWidth === 64")
    expect(failed.locator(".none")).to_have_count(0)
    assert "input image" in (failed.locator(".tag").text_content() or "")
    assert failed.locator(".cost").count() == 0, "a failed job cost nothing"

    page.select_option("#f-status", "")
    page.select_option("#f-run", FIRST)
    expect_shown(page, 2, 2)
    cost = page.locator('.card[data-id="a"] .cost').all_text_contents()
    assert cost == ["210,000 credits \u00b7 $0.11", "est. 422,535 \u00b7 $0.21"], "USD beside credits; the estimate"
    boxes = {
        key: page.locator(f'.card[data-id="{key}"] .media').evaluate(
            "m => { const r = m.getBoundingClientRect(); return [r.top, r.width, r.height]; }"
        )
        for key in ("a", "b")
    }
    (top_a, width_a, height_a), (top_b, width_b, height_b) = boxes["a"], boxes["b"]
    assert top_a == top_b, "portrait and landscape share a row"
    assert abs(height_a - height_b) <= 1, "a row of one height"
    assert width_a / height_a == pytest.approx(16 / 9, rel=0.03), "the landscape picture fills its box"
    assert width_b / height_b == pytest.approx(9 / 16, rel=0.03), "the portrait picture fills its box: no bands"
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_function(
        "() => document.querySelector('.card[data-id=\"a\"]').getBoundingClientRect().width <= 420 - 16"
    )
    widths = page.locator("#grid .card").evaluate_all("cards => cards.map(c => c.getBoundingClientRect().right)")
    assert max(widths) <= 420, "on a phone's width no card runs off the screen"

    page.set_viewport_size({"width": 1280, "height": 900})
    page.select_option("#f-run", "")
    page.evaluate("window.scrollTo(0, 0)")
    path = ARTIFACTS / "destination-report.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    print(f"screenshot: {path}")
    assert seen.errors == []
    assert {url.split(":", 1)[0] for url in seen.requests} <= {"file", "data"}, seen.requests
