"""One outcome per input row, whatever happened to it: the manifest's rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from i2v.errors import I2VError, InputChanged, Stopped
from i2v.inputs.row import InvalidRow, Row, shorten_image_ref
from i2v.media.mismatch import describe

Status = Literal["completed", "failed", "skipped"]


@dataclass(frozen=True)
class Origin:
    """Which run, and which Prefect flow run within it, produced an outcome."""

    run: str | None = None
    flow_run_id: str | None = None


@dataclass(frozen=True)
class RowOutcome:
    """A manifest row. Field order is the manifest's column order."""

    row_key: str | None
    row_index: int
    id: str | None
    image_url: str
    prompt: str
    model: str | None
    route: str | None
    params: str
    status: Status
    error_kind: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    generation_id: str | None = None
    submit_attempts: int = 0
    polls: int = 0
    submitted_at: float | None = None
    completed_at: float | None = None
    generation_seconds: float | None = None
    video_uri: str | None = None
    video_bytes: int | None = None
    video_sha256: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None
    #: How the video differs from what was asked (duration, aspect, resolution); None when it does not.
    mismatch: str | None = None
    thumbnail_uri: str | None = None
    credits_used: float | None = None
    #: What the provider reported the generation cost, in USD (``x-aimlapi-usd-spent``).
    usd_spent: float | None = None
    #: The ``X-Client-Request-Id`` of the create that made the job: the provider's logs know it by this.
    client_request_id: str | None = None
    run: str | None = None
    flow_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields by name. Every field is a plain value, so no copy is made (unlike ``asdict``)."""
        return {name: getattr(self, name) for name in COLUMNS}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RowOutcome:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowOutcome:
        """An outcome from its fields by name; names it does not know (a later version's) are left out."""
        return cls(**{k: v for k, v in data.items() if k in _FIELD_NAMES})


COLUMNS = tuple(f.name for f in fields(RowOutcome))
_FIELD_NAMES = frozenset(COLUMNS)


def base(row: Row, origin: Origin) -> dict[str, Any]:
    """The fields every outcome of a valid row shares."""
    return {
        "row_key": row.key,
        "row_index": row.index,
        "id": row.id,
        "image_url": shorten_image_ref(row.image_shown),
        "prompt": row.prompt,
        "model": row.model,
        "route": row.route,
        "params": json.dumps(dict(row.params), sort_keys=True),
        "run": origin.run,
        "flow_run_id": origin.flow_run_id,
    }


def invalid(bad: InvalidRow, origin: Origin) -> RowOutcome:
    """A row that failed validation; it keeps the cells it had."""
    return RowOutcome(
        row_key=None,
        row_index=bad.index,
        id=bad.cells.get("id") or None,
        image_url=bad.cells.get("image_url", ""),
        prompt=bad.cells.get("prompt", ""),
        model=bad.model or bad.cells.get("model") or None,
        route=None,
        params="{}",
        status="failed",
        error_kind="invalid_input",
        error_message=bad.message,
        retryable=False,
        run=origin.run,
        flow_run_id=origin.flow_run_id,
    )


def unread(index: int, why: str, origin: Origin, *, model: str | None = None) -> RowOutcome:
    """A row of a shard that could not be read (its input changed after the run planned it)."""
    return RowOutcome(
        row_key=None,
        row_index=index,
        id=None,
        image_url="",
        prompt="",
        model=model,
        route=None,
        params="{}",
        status="failed",
        error_kind=InputChanged.kind,
        error_message=why,
        retryable=True,
        run=origin.run,
        flow_run_id=origin.flow_run_id,
    )


def failed(row: Row, exc: BaseException, origin: Origin, **known: Any) -> RowOutcome:
    """A row that failed in a step; ``known`` carries what earlier steps learnt."""
    if isinstance(exc, I2VError):
        kind, retryable, message = exc.kind, bool(exc.retryable), str(exc)
    else:
        # Not one of ours: a bug or an unforeseen library error. Say so rather than guess.
        kind, retryable, message = "internal", True, f"{type(exc).__name__}: {exc}"
    polls = getattr(exc, "polls", None)
    if polls is not None and not known.get("polls"):
        known["polls"] = polls
    attempts = getattr(exc, "attempts", None)
    if attempts is not None and not known.get("submit_attempts"):
        known["submit_attempts"] = attempts
    if not known.get("generation_id") and getattr(exc, "generation_id", None):
        known["generation_id"] = exc.generation_id  # type: ignore[attr-defined]
    return RowOutcome(
        **base(row, origin),
        status="failed",
        error_kind=kind,
        error_message=message,
        retryable=retryable,
        **known,
    )


def stopped(row: Row, stop: Stopped, origin: Origin, **known: Any) -> RowOutcome:
    """A valid row the run stopped before finishing.

    After a bad key or an empty account the row failed for that reason; after a signal or
    a spending or failure limit it was only skipped. ``known`` carries a job already
    started, which a rerun re-attaches to.
    """
    job = known.get("generation_id")
    where = f"job {job} was still running; a rerun re-attaches to it" if job else "not submitted"
    return RowOutcome(
        **base(row, origin),
        status="failed" if stop.cause is not None else "skipped",
        error_kind=stop.kind,
        error_message=f"{where}: {stop}",
        retryable=True,
        **known,
    )


def not_retried(row: Row, record: RowOutcome, origin: Origin) -> RowOutcome:
    """A row whose work failed for good in an earlier run: reported again, not paid for again."""
    carried = {name: getattr(record, name) for name in ("generation_id", "submitted_at", "completed_at")}
    return RowOutcome(
        **base(row, origin),
        status="skipped",
        error_kind=record.error_kind,
        error_message=f"not retried (failed for good in run {record.run}): {record.error_message}",
        retryable=False,
        **carried,
    )


def already_done(row: Row, record: RowOutcome, origin: Origin) -> RowOutcome:
    """A row whose verified video a previous run stored: reported, not paid for again."""
    carried = {name: getattr(record, name) for name in _RESULT_FIELDS}
    # Same row key, same parameters: the note is worked out again so that videos stored
    # before the column existed get theirs too.
    carried["mismatch"] = describe(row.params, duration_s=record.duration_s, width=record.width, height=record.height)
    return RowOutcome(
        **base(row, origin),
        status="skipped",
        error_kind="already_done",
        error_message=f"video stored by run {record.run or record.flow_run_id}",
        **carried,
    )


def claimed_elsewhere(row: Row, run: str | None, origin: Origin) -> RowOutcome:
    """A row another run was working on all the while this one waited: left to it, not paid for here."""
    return RowOutcome(
        **base(row, origin),
        status="skipped",
        error_kind="claimed_elsewhere",
        error_message=f"left to run {run or 'unknown'}, which holds its claim; its manifest has the outcome",
        retryable=True,
    )


def duplicate(row: Row, first: RowOutcome, origin: Origin) -> RowOutcome:
    """A row asking for exactly the work of an earlier row: shares that row's result."""
    same = f"same work as row {first.row_index}"
    shared = replace(
        first,
        row_index=row.index,
        id=row.id,
        submit_attempts=0,
        polls=0,
        run=origin.run,
        flow_run_id=origin.flow_run_id,
    )
    if first.status == "failed":
        return replace(shared, error_message=f"{same}: {first.error_message}")
    return replace(shared, status="skipped", error_kind="duplicate", error_message=same, retryable=None)


_RESULT_FIELDS = (
    "generation_id",
    "submitted_at",
    "completed_at",
    "generation_seconds",
    "video_uri",
    "video_bytes",
    "video_sha256",
    "duration_s",
    "width",
    "height",
    "fps",
    "codec",
    "mismatch",
    "thumbnail_uri",
    "credits_used",
    "usd_spent",
    "client_request_id",
)
