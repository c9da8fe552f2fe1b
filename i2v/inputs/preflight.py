"""Pre-flight: what an input would do before a run pays for it.

:func:`validate` reports every row that would not produce its own video: rows the
registry rejects (:mod:`i2v.inputs.validation` names the row, CSV line and field), rows asking for the
same work as an earlier row, image URLs that do not answer, and local or inline images
that do not open. :func:`estimate` prices the jobs a run would start, from the table in
:mod:`i2v.api.prices`.

Everything here is plain logic over :class:`i2v.inputs.validation.RowSet`; the only I/O is reading
the input and its local images, and the URL checks, which go through the
``httpx.AsyncClient`` the caller passes in (:func:`image_client` makes a suitable one).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from PIL import Image

from i2v.api import prices
from i2v.api.prices import credits
from i2v.inputs import comparison
from i2v.inputs.row import InvalidRow, Row
from i2v.inputs.validation import RowSet
from i2v.limits import MAX_REDIRECTS

#: Where the figures :func:`estimate` uses are kept, for people to read and edit.
PRICE_TABLE = prices.PRICES_FILE
DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT_S = 10.0
#: Statuses after which a HEAD is tried again as a ranged GET: servers that do not do HEAD
#: (405, 501), and presigned URLs, whose signature covers the method (S3 answers 403).
_TRY_GET_AFTER = frozenset({403, 405, 501})
#: Answers that are no image, whatever the URL says (a login page, an error document).
_NOT_IMAGE_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")

#: ``invalid``: the registry or the file rejects the row; ``duplicate_id``: its id names other
#: work of an earlier row (the row fails); ``duplicate_row``: it asks for an earlier row's work
#: (done once, shared); ``image``: its image does not answer or does not open.
ProblemKind = Literal["invalid", "duplicate_id", "duplicate_row", "image"]
PROBLEM_KINDS: tuple[ProblemKind, ...] = ("invalid", "duplicate_id", "duplicate_row", "image")


@dataclass(frozen=True)
class Problem:
    """Why one row would not get a video of its own."""

    row: int
    line: int
    id: str
    field: str | None
    kind: ProblemKind
    problem: str


@dataclass
class Validation:
    """What :func:`validate` found in one input."""

    input: str
    rows: int
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    #: Distinct local and inline images opened.
    images_opened: int = 0
    #: Distinct image URLs asked; None when the network was not used.
    urls_checked: int | None = None

    @property
    def rows_with_problems(self) -> int:
        return len({problem.row for problem in self.problems})

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Problems by kind, every kind listed."""
        found: dict[str, int] = dict.fromkeys(PROBLEM_KINDS, 0)
        for problem in self.problems:
            found[problem.kind] += 1
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "ok": self.ok,
            "rows": self.rows,
            "rows_ok": self.rows - self.rows_with_problems,
            "rows_with_problems": self.rows_with_problems,
            "problems_by_kind": self.counts(),
            "images_opened": self.images_opened,
            "urls_checked": self.urls_checked,
            "ignored_columns": self.ignored_columns,
            "problems": [asdict(problem) for problem in self.problems],
        }


@dataclass(frozen=True)
class CostLine:
    """The jobs of one model, resolution and duration, and what they are expected to cost."""

    model: str
    resolution: str
    duration_s: int
    jobs: int
    credits: float
    usd: float
    #: False when the rates lack this resolution (the model's dearest rate is used).
    listed: bool
    #: ``live`` (the API's catalogue), ``table`` (the shipped table) or ``unknown``: no
    #: price anywhere, so ``credits`` and ``usd`` are 0 and left out of the totals.
    source: str = "table"


@dataclass
class CostEstimate:
    """What :func:`estimate` expects a run of one input to cost."""

    input: str
    rows: int
    lines: list[CostLine] = field(default_factory=list)
    #: Valid rows that repeat an earlier row's work: generated (and paid) once.
    duplicates: int = 0
    #: Invalid rows: not sent, so not counted.
    invalid: list[Problem] = field(default_factory=list)
    #: Where the live catalogue was asked (None: it was not), and why it gave nothing.
    live_url: str | None = None
    live_error: str | None = None
    #: Rows of the input (``rows`` counts (row, model) pairs in a comparison); None: as many as ``rows``.
    input_rows: int | None = None
    #: The models a comparison runs rows on.
    models: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(line.jobs for line in self.lines)

    @property
    def unpriced_jobs(self) -> int:
        """Jobs of models with no known price: counted apart, never in the cost totals."""
        return sum(line.jobs for line in self.lines if line.source == "unknown")

    @property
    def credits(self) -> float:
        return sum(line.credits for line in self.lines)

    @property
    def usd(self) -> float:
        return round(sum(line.usd for line in self.lines), 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "rows": self.rows,
            "input_rows": self.rows if self.input_rows is None else self.input_rows,
            "models": self.models,
            "jobs": self.jobs,
            "duplicates": self.duplicates,
            "credits": self.credits,
            "usd": self.usd,
            "lines": [asdict(line) for line in self.lines],
            "not_counted": [asdict(problem) for problem in self.invalid],
            "prices": {"file": PRICE_TABLE, "taken": prices.PRICES_TAKEN, "source": prices.PRICES_SOURCE},
            "unpriced_jobs": self.unpriced_jobs,
            "live_prices": {
                "url": self.live_url,
                "used": any(line.source == "live" for line in self.lines),
                "error": self.live_error,
            },
        }


async def validate(
    path: str | Path,
    rows: RowSet,
    *,
    http: httpx.AsyncClient | None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Validation:
    """Every problem of ``rows`` (read from ``path``); image URLs are asked only when ``http`` is given."""
    found = invalid_rows(rows)
    found += repeated(rows.rows)
    found += unreadable_images(rows.rows)
    checked: int | None = None
    if http is not None:
        urls = {row.image_ref for row in rows.rows if _is_url(row)}
        answers = await check_urls(http, urls, concurrency=concurrency)
        checked = len(answers)
        for row in rows.rows:
            why = answers.get(row.image_ref)
            if why:
                found.append(_problem(row, "image_url", "image", why))
    found.sort(key=lambda problem: (problem.row, problem.kind))
    opened = len({row.image_key for row in rows.rows if row.image_key})
    return Validation(str(path), rows.total, found, list(rows.ignored_columns), opened, checked)


def invalid_rows(rows: RowSet) -> list[Problem]:
    """The rows validation rejected; those failed for an id an earlier row uses are ``duplicate_id``."""
    first_use: dict[str, int] = {}
    uses = [(row.index, row.id) for row in rows.rows] + [(bad.index, _id(bad)) for bad in rows.invalid]
    for index, row_id in sorted(uses):
        if row_id:
            first_use.setdefault(row_id, index)
    found = []
    for bad in rows.invalid:
        reused = bad.field == "id" and first_use.get(_id(bad), bad.index) < bad.index
        kind: ProblemKind = "duplicate_id" if reused else "invalid"
        found.append(Problem(bad.index, bad.line, _id(bad), bad.field, kind, bad.reason))
    return found


def repeated(rows: Iterable[Row]) -> list[Problem]:
    """Rows asking for exactly the work of an earlier row (same row key): the run does it once."""
    first: dict[str, Row] = {}
    found = []
    for row in rows:
        earlier = first.setdefault(row.key, row)
        if earlier is row:
            continue
        if earlier.id == row.id:
            why = f"repeats row {earlier.index} (CSV line {earlier.line}): same id, same work"
        else:
            why = f"asks for the same work as row {earlier.index} (id {earlier.id!r})"
        found.append(_problem(row, None, "duplicate_row", f"{why}; generated once and shared"))
    return found


def unreadable_images(rows: Iterable[Row]) -> list[Problem]:
    """Rows whose local file or data URI is not an image Pillow can open (each image opened once)."""
    verdicts: dict[str, str | None] = {}
    found = []
    for row in rows:
        if row.image_key is None:
            continue
        if row.image_key not in verdicts:
            verdicts[row.image_key] = _image_problem(row)
        why = verdicts[row.image_key]
        if why:
            found.append(_problem(row, "image_url", "image", why))
    return found


async def check_urls(http: httpx.AsyncClient, urls: Iterable[str], *, concurrency: int) -> dict[str, str | None]:
    """Each URL → why it cannot be fetched as an image, or None when it answers; at most ``concurrency`` at once.

    ``concurrency`` workers share one iterator of the URLs, so a file of 100,000 URLs
    holds that many tasks, not one per URL.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    distinct = sorted(set(urls))
    pending = iter(distinct)
    answers: dict[str, str | None] = {}

    async def worker() -> None:
        for url in pending:
            answers[url] = await check_url(http, url)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(distinct))):
            group.create_task(worker())
    return answers


async def check_url(http: httpx.AsyncClient, url: str) -> str | None:
    """Why ``url`` cannot be fetched as an image, or None: a HEAD, then a one-byte GET if HEAD is refused."""
    try:
        answer = await http.head(url)
        if answer.status_code in _TRY_GET_AFTER:
            async with http.stream("GET", url, headers={"Range": "bytes=0-0"}) as answer:
                pass  # the status and headers are all that is wanted; the body is left unread
    except httpx.TimeoutException:
        limit = http.timeout.read
        return "did not answer in time" if limit is None else f"did not answer within {limit:g} s"
    except httpx.TooManyRedirects:
        return f"redirects more than {http.max_redirects} times"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"could not be reached: {str(exc) or type(exc).__name__}"
    if not answer.is_success:
        return f"answered HTTP {answer.status_code} {answer.reason_phrase}".rstrip()
    content_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(_NOT_IMAGE_TYPES):
        return f"answered {content_type}, not an image"
    return None


def image_client(*, timeout_s: float = DEFAULT_TIMEOUT_S, concurrency: int = DEFAULT_CONCURRENCY) -> httpx.AsyncClient:
    """A client for checking image URLs: no credentials, redirects followed as the provider would, finite timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        headers={"User-Agent": "i2v-pipeline (validate)"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
    )


def live_prices(base_url: str) -> tuple[dict[str, prices.Rates], str, str | None]:
    """The live catalogue's rates, the URL asked and, when it could not be had, why (rates then empty)."""
    url = base_url.rstrip("/") + prices.CATALOGUE_PATH + "?include=pricing"
    try:
        return prices.fetch_live(base_url), url, None
    except (httpx.HTTPError, ValueError) as exc:
        return {}, url, f"{type(exc).__name__}: {exc}"


def estimate(
    path: str | Path,
    rows: RowSet,
    *,
    live: Mapping[str, prices.Rates] | None = None,
    live_url: str | None = None,
    live_error: str | None = None,
) -> CostEstimate:
    """Jobs and expected cost by model, resolution and duration; each piece of work counted once.

    ``live``: rates from the API's catalogue (see :func:`live_prices`), which win over the table.
    """
    groups: dict[tuple[str, str, int], list[prices.Estimate]] = {}
    seen: set[str] = set()
    duplicates = 0
    for row in rows.rows:
        if row.key in seen:
            duplicates += 1
            continue
        seen.add(row.key)
        price = prices.estimate(row.model, row.params, live=live)
        resolution = str(row.params.get("resolution") or "-")
        groups.setdefault((row.model, resolution, price.seconds), []).append(price)
    lines = [
        CostLine(
            model=model,
            resolution=resolution,
            duration_s=seconds,
            jobs=len(each),
            credits=sum(price.credits for price in each),
            usd=round(sum(price.usd for price in each), 4),
            listed=all(price.listed for price in each),
            source=each[0].source,
        )
        for (model, resolution, seconds), each in sorted(groups.items(), key=_by_model_resolution_duration)
    ]
    return CostEstimate(
        str(path),
        rows.total,
        lines,
        duplicates,
        invalid_rows(rows),
        live_url,
        live_error,
        input_rows=rows.input_rows,
        models=rows.compared,
    )


# --- what people read ----------------------------------------------------------------------


def validation_text(result: Validation) -> str:
    """The validation as a table a person reads: one line per problem, then the totals."""
    lines = []
    if result.problems:
        lines += _problem_table(result.problems)
        lines.append("")
    if result.ignored_columns:
        lines.append(f"columns ignored (no model's parameter): {', '.join(result.ignored_columns)}")
    urls = "not checked (--no-network)" if result.urls_checked is None else f"{result.urls_checked} asked"
    lines.append(f"images: {result.images_opened} local or inline opened; image URLs: {urls}")
    counts = result.counts()
    verdict = f"{result.input}: {result.rows} rows, {result.rows - result.rows_with_problems} ok"
    if result.problems:
        verdict += f", {result.rows_with_problems} with problems"
        verdict += " (" + ", ".join(f"{kind.replace('_', ' ')}: {counts[kind]}" for kind in PROBLEM_KINDS) + ")"
    lines.append(verdict)
    return "\n".join(lines)


def estimate_text(result: CostEstimate) -> str:
    """The estimate as a table a person reads: jobs and cost per model, resolution and duration."""
    rows: list[tuple[object, ...]] = [
        (line.model, line.resolution, f"{line.duration_s} s", line.jobs, *_cost(line)) for line in result.lines
    ]
    unpriced = result.unpriced_jobs
    priced = result.jobs - unpriced
    rows.append(("total", "", "", priced, credits(result.credits), f"{result.usd:,.2f}"))
    if unpriced:
        rows.append(("price unknown", "", "", unpriced, "-", "-"))
    lines = _table(("model", "resolution", "duration", "jobs", "credits", "USD"), rows, right=(2, 3, 4, 5))
    input_rows = result.rows if result.input_rows is None else result.input_rows
    counted = f"{result.input}: {comparison.counted(input_rows, result.rows, len(result.models))}, {result.jobs} jobs"
    if result.duplicates:
        counted += f" ({result.duplicates} duplicate rows counted once)"
    lines += ["", counted]
    if any(not line.listed and line.source != "unknown" for line in result.lines):
        lines.append("* no price for this resolution: the model's dearest rate is used")
    if unpriced:
        lines.append(f"price unknown: {unpriced} jobs of models no price list has, not in the totals")
    sources = {line.source for line in result.lines}
    if "live" in sources:
        rest = " (the rest from the table)" if "table" in sources else ""
        lines.append(f"prices: live, from {result.live_url}{rest}")
    elif result.live_url is not None:
        lines.append(f"live prices: not used ({result.live_error or 'the catalogue quotes none of these models'})")
    lines += [
        f"prices: {PRICE_TABLE}, taken {prices.PRICES_TAKEN} ({prices.PRICES_SOURCE})",
        "an estimate: edit that table if your prices differ; the API reports what each job actually cost",
    ]
    if result.invalid:
        lines += ["", f"not counted: {len(result.invalid)} invalid rows"]
        lines += _problem_table(result.invalid)
    return "\n".join(lines)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, right: Collection[int]) -> list[str]:
    """Aligned columns, those in ``right`` right-aligned; the last is not padded, so long messages run on."""
    cells = [[str(cell) for cell in row] for row in [tuple(headers), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for row in cells:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(parts).rstrip())
    return out


def _problem_table(problems: Sequence[Problem]) -> list[str]:
    rows = [(p.row, p.line, p.id or "-", p.field or "-", p.problem) for p in problems]
    return _table(("row", "line", "id", "field", "problem"), rows, right=(0, 1))


def _cost(line: CostLine) -> tuple[str, str]:
    """The credits and USD cells of a line; a model no price list has says so."""
    if line.source == "unknown":
        return "price unknown", "-"
    return credits(line.credits), f"{line.usd:,.2f}" + ("" if line.listed else "*")


def _by_model_resolution_duration(item: tuple[tuple[str, str, int], Any]) -> tuple[str, int, int]:
    model, resolution, seconds = item[0]
    digits = "".join(ch for ch in resolution if ch.isdigit())
    return model, int(digits or 0), seconds


def _id(bad: InvalidRow) -> str:
    return bad.cells.get("id", "").strip()


def _problem(row: Row, field_name: str | None, kind: ProblemKind, why: str) -> Problem:
    return Problem(row.index, row.line, row.id, field_name, kind, why)


def _is_url(row: Row) -> bool:
    # s3:// images are presigned only when sent; whether they exist is the S3 client's to say.
    return row.image_ref.lower().startswith(("https://", "http://"))


def _image_problem(row: Row) -> str | None:
    """Why Pillow cannot open the row's image (its header and, for PNG, every chunk's checksum)."""
    what = repr(row.image_ref) if row.image_path else "the data URI's image"
    try:
        data = row.image_bytes()
        if data is None:
            return None
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except OSError as exc:
        return f"{what} does not open as an image: {exc}"
    except (SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"{what} is not a usable image: {exc}"
    return None
