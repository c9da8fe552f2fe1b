"""What ``i2v rerun`` and ``i2v status`` print for a person: the rows to run, the rows left and why."""

from __future__ import annotations

from i2v.api.prices import credits
from i2v.inputs.from_manifest import Reason, RerunPlan
from i2v.manifest.status import DestinationStatus

#: Chosen rows a rerun lists before it starts (``--dry-run`` lists them all).
SHOWN_ROWS = 10
_MESSAGE_WIDTH = 90

#: Why rows are left, and what would take them, in the order shown.
_LEFT: tuple[tuple[Reason, str, str], ...] = (
    ("permanent", "failed for good", "--include-failed takes them"),
    ("unknown", "sent without an answer (submit_unknown)", "--include-unknown takes them; each may be paid twice"),
    ("claimed", "left to another run (claimed_elsewhere)", "--kind claimed_elsewhere takes them"),
    ("other_kind", "of other kinds than --kind asked for", "another --kind takes them"),
    ("invalid", "invalid in the input", "fix them in the input and `i2v run` it again"),
    ("unread", "never read (the input changed during the run)", "`i2v run` the input again"),
    ("done", "with a stored video", "nothing to do"),
)


def plan_text(plan: RerunPlan, *, every_row: bool = False) -> str:
    """The rows a rerun runs (the first :data:`SHOWN_ROWS`, or all), the rows it leaves and the flag that takes them."""
    chosen = len(plan.chosen)
    kinds = ", ".join(f"{kind} {count}" for kind, count in plan.by_kind.most_common())
    lines = [f"{plan.manifest}: {plan.total} row(s); {chosen} to run again" + (f" ({kinds})" if kinds else "")]
    shown = plan.chosen if every_row else plan.chosen[:SHOWN_ROWS]
    for row in shown:
        why = f"{row.error_kind or 'failed'}: {row.error_message or ''}".rstrip(": ")
        lines.append(f"  row {row.row_index} ({row.id or '-'}): {_clip(why)}")
    if len(shown) < chosen:
        lines.append(f"  … and {chosen - len(shown)} more (--dry-run lists them all)")
    for reason, words, remedy in _LEFT:
        count = plan.left_count(reason)
        if count:
            by_kind = ", ".join(f"{kind} {n}" for kind, n in plan.left[reason].most_common())
            lines.append(f"left: {count} row(s) {words} [{by_kind}]: {remedy}")
    if plan.unmatched_kinds:
        lines.append(f"no row has the kind(s) {', '.join(plan.unmatched_kinds)}")
    return "\n".join(lines)


def status_text(found: DestinationStatus) -> str:
    """``i2v status``: runs, rows by status, cost, unknown and claimed rows, what a rerun would do."""
    lines = [f"destination: {found.dest}"]
    if not found.runs and found.rows is None:
        lines.append("no runs yet")
        return "\n".join(lines)
    lines.append(f"runs: {len(found.runs)}")
    for run in found.runs:
        lines.append(
            f"  {run.run}: {run.rows} rows, {run.completed} completed, {run.skipped} skipped, {run.failed} failed,"
            f" {credits(run.credits_used)} credits"
        )
    rows = found.rows
    if rows is not None:
        lines.append(
            f"rows: {rows.total}: {rows.completed} completed, {rows.failed} failed, {rows.skipped} skipped"
            + (f" (failed: {', '.join(f'{k} {n}' for k, n in rows.failures_by_kind.items())})" if rows.failed else "")
        )
        lines.append(f"cost: {credits(rows.credits_used)} credits, ${found.usd_spent:.2f}")
    if found.unknown:
        shown = ", ".join(map(str, found.unknown[:SHOWN_ROWS])) + (" …" if len(found.unknown) > SHOWN_ROWS else "")
        lines.append(
            f"unknown: {len(found.unknown)} row(s) sent without an answer (rows {shown}); the next run looks them up"
        )
    if found.claimed:
        held = ", ".join(f"{run} {count}" for run, count in found.claimed.items())
        lines.append(f"claimed now by a live run: {held}")
    if found.rerun is not None:
        lines.append("a plain `i2v rerun` of its manifest:")
        lines += ["  " + line for line in plan_text(found.rerun).splitlines()]
    return "\n".join(lines)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_WIDTH else text[: _MESSAGE_WIDTH - 1] + "…"
