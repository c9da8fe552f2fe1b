"""Pre-flight: `i2v validate` and `i2v estimate` on real files and a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from i2v.api import prices
from i2v.cli.main import main
from i2v.demo import SAMPLE_CSV
from i2v.inputs import image_checks
from tests.conftest import free_port
from tests.loopback import serving

SAMPLE = str(SAMPLE_CSV)


def _png_bytes(color: tuple[int, int, int] = (30, 90, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), color).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png_bytes()


@dataclass
class _Seen:
    """What the image server was asked, and the most requests it held at once."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Images(BaseHTTPRequestHandler):
    """Images at /img/ and /slow/ (0.3 s late); /nohead/ only to GET; /page.html is HTML; /stall waits 5 s; else 404."""

    seen: _Seen

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        seen = self.seen
        with seen.lock:
            seen.requests.append((self.command, self.path, self.headers.get("Range")))
            seen.in_flight += 1
            seen.most_in_flight = max(seen.most_in_flight, seen.in_flight)
        try:
            if self.path.startswith("/slow/"):
                time.sleep(0.3)
            if self.path == "/stall":
                time.sleep(5)
            if self.path.startswith(("/img/", "/slow/")):
                self._answer(200, PNG, "image/png", body)
            elif self.path.startswith("/nohead/"):
                if self.command == "HEAD":
                    self._answer(405, b"", "text/plain", body)
                else:
                    self._answer(206, PNG[:1], "image/png", body)
            elif self.path == "/page.html":
                self._answer(200, b"<html>sign in</html>", "text/html; charset=utf-8", body)
            else:
                self._answer(404, b"not here", "text/plain", body)
        finally:
            with seen.lock:
                seen.in_flight -= 1

    def _answer(self, status: int, data: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@dataclass
class ImageServer:
    base_url: str
    seen: _Seen


@pytest.fixture
def images() -> Iterator[ImageServer]:
    """A real HTTP server on loopback serving images at some paths and 404 at others."""
    seen = _Seen()
    with serving(type("Handler", (_Images,), {"seen": seen})) as base_url:
        yield ImageServer(base_url, seen)


def _csv(folder: Path, text: str, name: str = "rows.csv") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_sample_validates_with_its_two_invalid_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """The sample: eight good rows, and the bad duration and missing image reported by row, line and field."""
    assert main(["validate", SAMPLE]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["row", "line", "id", "field", "problem"]
    assert lines[1].split()[:4] == ["8", "10", "bad-duration", "duration"]
    assert lines[1].endswith("must be one of 5, 10, got 12 (alibaba/wan2.5-i2v-preview)")
    assert lines[2].split()[:4] == ["9", "11", "missing-image", "image_url"]
    assert "'images/no-such-picture.png' not found" in lines[2]
    assert "images: 8 local or inline opened" in out
    assert lines[-1].startswith(f"{SAMPLE}: 10 rows, 8 ok, 2 with problems (invalid: 2,")


def test_sample_json_parses(capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` prints one JSON document with each problem's row, line, id, field and kind."""
    assert main(["validate", SAMPLE, "--json", "--no-network"]) == 1
    document = _json(capsys)
    assert document["ok"] is False
    assert (document["rows"], document["rows_ok"], document["urls_checked"]) == (10, 8, None)
    found = [(p["row"], p["line"], p["id"], p["field"], p["kind"]) for p in document["problems"]]
    assert found == [(8, 10, "bad-duration", "duration", "invalid"), (9, 11, "missing-image", "image_url", "invalid")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'image_url,prompt\nimg.png,"never closed\n', "is never closed"),
        (b"picture,caption\nimg.png,hello\n", "lacks the column(s) image_url, prompt"),
        (b"\xff\xfe\x00\x01 not text at all", "is not UTF-8 text"),
        (b"", "is empty"),
    ],
)
def test_unusable_file_is_one_clear_error_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    """A file that is not a usable CSV: one line on stderr naming why, exit 2, for both commands."""
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    for command in ("validate", "estimate"):
        assert main([command, str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("i2v: error: ")
        assert message in captured.err
        assert captured.err.count("\n") == 1


def test_unusable_file_with_json_still_prints_a_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With `--json`, a missing file gives a parseable document with the error as well as exit 2."""
    assert main(["validate", str(tmp_path / "nope.csv"), "--json"]) == 2
    document = _json(capsys)
    assert document["ok"] is False
    assert "not found" in document["error"]
    assert "nope.csv" in document["error"]


def test_duplicate_rows_and_ids_are_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Same work again (same or other id) is a duplicate row; an id reused for other work is a duplicate id."""
    (tmp_path / "a.png").write_bytes(PNG)
    path = _csv(
        tmp_path,
        "id,image_url,prompt\n"
        "one,a.png,Waves roll in\n"
        "one,a.png,Waves roll in\n"
        "two,a.png,Waves roll in\n"
        "one,a.png,Something else entirely\n"
        "three,a.png,Clouds drift\n",
    )
    assert main(["validate", path, "--json"]) == 1
    document = _json(capsys)
    found = {(p["row"], p["kind"]) for p in document["problems"]}
    assert found == {(1, "duplicate_row"), (2, "duplicate_row"), (3, "duplicate_id")}
    assert document["problems_by_kind"] == {"invalid": 0, "duplicate_id": 1, "duplicate_row": 2, "image": 0}
    assert "repeats row 0" in document["problems"][0]["problem"]
    assert "same work as row 0 (id 'one')" in document["problems"][1]["problem"]
    assert "already used by row 0" in document["problems"][2]["problem"]
    assert document["rows_ok"] == 2


def test_corrupt_local_image_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that starts like a PNG but is cut short passes the sniff test and fails Pillow's check."""
    (tmp_path / "cut.png").write_bytes(PNG[:40])
    (tmp_path / "good.png").write_bytes(PNG)
    path = _csv(tmp_path, "id,image_url,prompt\ncut,cut.png,Waves\ngood,good.png,Waves\n")
    assert main(["validate", path]) == 1
    out = capsys.readouterr().out
    (problem,) = [line for line in out.splitlines() if line.lstrip().startswith("0 ")]
    assert problem.split()[:4] == ["0", "2", "cut", "image_url"]
    assert "'cut.png'" in problem
    assert "good" not in out.split("images:")[0]


def test_image_urls_are_checked_with_status_per_failing_row(
    tmp_path: Path, images: ImageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Answering URLs pass (HEAD, or a ranged GET after 405); 404, HTML, a closed port and a stall are reported."""
    base = images.base_url
    closed = f"http://127.0.0.1:{free_port()}/img/x.png"
    rows = [
        ("ok", f"{base}/img/a.png"),
        ("ok-again", f"{base}/img/a.png"),
        ("no-head", f"{base}/nohead/b.png"),
        ("gone", f"{base}/img-missing/c.png"),
        ("html", f"{base}/page.html"),
        ("closed", closed),
        ("stalls", f"{base}/stall"),
    ]
    text = "id,image_url,prompt\n" + "".join(f"{name},{url},Prompt for {name}\n" for name, url in rows)
    path = _csv(tmp_path, text)
    started = time.monotonic()
    assert main(["validate", path, "--allow-http-images", "--timeout", "0.5", "--json"]) == 1
    assert time.monotonic() - started < 4, "the stalled URL is given up on at the timeout"
    document = _json(capsys)
    problems = {p["id"]: p for p in document["problems"]}
    assert set(problems) == {"gone", "html", "closed", "stalls"}
    assert all(p["kind"] == "image" and p["field"] == "image_url" for p in problems.values())
    assert problems["gone"]["problem"] == "answered HTTP 404 Not Found"
    assert problems["html"]["problem"] == "answered text/html, not an image"
    assert problems["closed"]["problem"].startswith("could not be reached")
    assert problems["stalls"]["problem"] == "did not answer within 0.5 s"
    assert document["urls_checked"] == 6, "the repeated URL is asked once"
    asked = images.seen.requests
    assert ("GET", "/nohead/b.png", "bytes=0-0") in asked
    assert [r for r in asked if r[1] == "/img/a.png"] == [("HEAD", "/img/a.png", None)]


def test_no_network_skips_url_checks(tmp_path: Path, images: ImageServer, capsys: pytest.CaptureFixture[str]) -> None:
    """`--no-network` asks no URL: a clean file exits 0 and says the URLs were not checked."""
    path = _csv(tmp_path, f"image_url,prompt\n{images.base_url}/img-missing/a.png,Waves\n")
    assert main(["validate", path, "--allow-http-images", "--no-network"]) == 0
    out = capsys.readouterr().out
    assert "image URLs: not checked (--no-network)" in out
    assert out.splitlines()[-1] == f"{path}: 1 rows, 1 ok"
    assert images.seen.requests == []


def test_url_checks_stay_within_the_concurrency(images: ImageServer) -> None:
    """Twelve slow URLs with a concurrency of three: never more than three requests at the server at once."""
    urls = [f"{images.base_url}/slow/{n}.png" for n in range(12)]

    async def check() -> dict[str, str | None]:
        async with image_checks.image_client(timeout_s=5, concurrency=3) as http:
            return await image_checks.check_urls(http, urls, concurrency=3)

    answers = asyncio.run(check())
    assert answers == dict.fromkeys(urls)
    assert images.seen.most_in_flight == 3


def test_clean_file_validates_with_exit_0(
    tmp_path: Path, images: ImageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Local images and answering URLs, no repeats: nothing listed, exit 0."""
    (tmp_path / "a.png").write_bytes(PNG)
    path = _csv(tmp_path, f"image_url,prompt\na.png,Waves\n{images.base_url}/img/b.png,Clouds\n")
    assert main(["validate", path, "--allow-http-images"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["images: 1 local or inline opened; image URLs: 1 asked", f"{path}: 2 rows, 2 ok"]


def test_estimate_totals_follow_the_price_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Jobs and cost per model, resolution and duration are prices.py's; repeats count once, bad rows not at all."""
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(_png_bytes((200, 10, 10)))
    path = _csv(
        tmp_path,
        "id,image_url,prompt,model,resolution,duration\n"
        "r0,a.png,Waves,,480p,5\n"
        "r1,b.png,Waves,,480p,5\n"
        "r2,b.png,Waves,,480p,5\n"
        "r3,a.png,Waves,,1080p,10\n"
        "r4,a.png,Waves,alibaba/wan2.2-i2v-plus,,\n"
        "r5,a.png,Waves,,480p,12\n",
    )
    assert main(["estimate", "--no-network", path, "--json"]) == 1
    document = _json(capsys)
    wan25, wan22 = "alibaba/wan2.5-i2v-preview", "alibaba/wan2.2-i2v-plus"
    small = prices.estimate(wan25, {"resolution": "480p", "duration": 5})
    large = prices.estimate(wan25, {"resolution": "1080p", "duration": 10})
    plus = prices.estimate(wan22, {"resolution": "1080P"})
    lines = [
        (x["model"], x["resolution"], x["duration_s"], x["jobs"], x["credits"], x["usd"]) for x in document["lines"]
    ]
    assert lines == [
        (wan22, "1080P", 5, 1, plus.credits, plus.usd),
        (wan25, "480p", 5, 2, 2 * small.credits, round(2 * small.usd, 4)),
        (wan25, "1080p", 10, 1, large.credits, large.usd),
    ]
    assert (document["rows"], document["jobs"], document["duplicates"]) == (6, 4, 1)
    assert document["credits"] == 2 * small.credits + large.credits + plus.credits
    assert document["usd"] == pytest.approx(2 * small.usd + large.usd + plus.usd)
    assert [(p["id"], p["field"]) for p in document["not_counted"]] == [("r5", "duration")]
    table = {"file": "i2v/api/catalogue/prices.json", "taken": prices.PRICES_TAKEN, "source": prices.PRICES_SOURCE}
    assert document["prices"] == table


def test_estimate_table_applies_run_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Blank cells take `--resolution`/`--duration` as in `i2v run`; a clean file exits 0 with a readable table."""
    (tmp_path / "a.png").write_bytes(PNG)
    path = _csv(tmp_path, "image_url,prompt\na.png,Waves\na.png,Clouds\n")
    assert main(["estimate", "--no-network", path, "--resolution", "720p", "--duration", "10"]) == 0
    out = capsys.readouterr().out
    each = prices.estimate("alibaba/wan2.5-i2v-preview", {"resolution": "720p", "duration": 10})
    table = out.splitlines()
    assert table[0].split() == ["model", "resolution", "duration", "jobs", "credits", "USD"]
    assert table[1].split() == [
        "alibaba/wan2.5-i2v-preview",
        "720p",
        "10",
        "s",
        "2",
        f"{2 * each.credits:,.0f}",
        f"{2 * each.usd:.2f}",
    ]
    assert table[2].split()[:2] == ["total", "2"]
    assert f"{path}: 2 rows, 2 jobs" in out
    assert f"prices: i2v/api/catalogue/prices.json, taken {prices.PRICES_TAKEN}" in out


def test_estimate_of_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    """The sample: eight jobs over three models, its two invalid rows listed as not counted (exit 1)."""
    assert main(["estimate", "--no-network", SAMPLE]) == 1
    out = capsys.readouterr().out
    assert f"{SAMPLE}: 10 rows, 8 jobs" in out
    assert "not counted: 2 invalid rows" in out
    assert {line.split()[0] for line in out.splitlines()[1:6]} == {
        "alibaba/wan2.2-i2v-plus",
        "alibaba/wan2.5-i2v-preview",
        "alibaba/wan-2-6-i2v",
    }


def test_parquet_copy_of_the_sample_gives_the_same_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The sample as Parquet (its images beside it): the same invalid rows and the same estimate as the CSV."""
    shutil.copytree(SAMPLE_CSV.parent / "images", tmp_path / "images")
    copy = tmp_path / "sample.parquet"
    pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).to_parquet(copy)
    results = []
    for source in (SAMPLE, str(copy)):
        assert main(["validate", source, "--json"]) == 1
        validated = _json(capsys)
        assert main(["estimate", "--no-network", source, "--json"]) == 1
        estimated = _json(capsys)
        problems = [(p["row"], p["id"], p["field"], p["kind"]) for p in validated["problems"]]
        results.append((problems, estimated["lines"], estimated["credits"]))
    assert results[0] == results[1]
