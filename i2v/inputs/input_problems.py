"""What ``i2v validate`` finds: every row of an input that would not produce its own video.

:func:`validate` reports rows the registry rejects (:mod:`i2v.inputs.validation` names the
row, CSV line and field), rows asking for the same work as an earlier row, image URLs that
do not answer, and local or inline images that do not open (:mod:`i2v.inputs.image_checks`
asks and opens them). :func:`validation_text` is the table a person reads.

Everything here is plain logic over :class:`i2v.inputs.validation.RowSet`; the only I/O is
the image checks, and the network is used only when the caller passes a client.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from i2v.inputs.image_checks import DEFAULT_CONCURRENCY, check_urls, image_problem, is_url
from i2v.inputs.row import InvalidRow, Row
from i2v.inputs.text_table import text_table
from i2v.inputs.validation import RowSet

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
        urls = {row.image_ref for row in rows.rows if is_url(row)}
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
            verdicts[row.image_key] = image_problem(row)
        why = verdicts[row.image_key]
        if why:
            found.append(_problem(row, "image_url", "image", why))
    return found


def validation_text(result: Validation) -> str:
    """The validation as a table a person reads: one line per problem, then the totals."""
    lines = []
    if result.problems:
        lines += problem_table(result.problems)
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


def problem_table(problems: Sequence[Problem]) -> list[str]:
    """Problems as aligned lines: row, CSV line, id, field and what is wrong."""
    rows = [(p.row, p.line, p.id or "-", p.field or "-", p.problem) for p in problems]
    return text_table(("row", "line", "id", "field", "problem"), rows, right=(0, 1))


def _id(bad: InvalidRow) -> str:
    return bad.cells.get("id", "").strip()


def _problem(row: Row, field_name: str | None, kind: ProblemKind, why: str) -> Problem:
    return Problem(row.index, row.line, row.id, field_name, kind, why)
