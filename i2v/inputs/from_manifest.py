"""Re-running chosen rows of a manifest, from nothing but the destination.

A manifest row carries everything its work needs: the prompt, the model and its path,
the parameters, and the image (its URL, or the key of the copy kept under ``inputs/``).
:func:`write_input` turns the chosen rows back into an input file the pipeline reads
like any other, so a rerun goes through the same checks, keys and journal as a first
run: a job still running is re-attached, a stored video skipped, nothing paid twice.
Each row keeps the ``row_index`` its manifest gave it, through a hidden column of that
file (:data:`~i2v.inputs.csv_reader.ROW_INDEX_COLUMN`), and its ``id``.

The manifest is a destination's (``manifest.parquet`` or ``manifest.csv``) or a run's
(``runs/<run>/manifest.parquet`` or ``.csv``); either way the destination is the folder
or prefix the manifest belongs to (:func:`locate`), where the kept input images are.

Which rows (:meth:`Selection.sort`; every other row is left, for a reason a person is told):

* ``retryable`` (the default): rows without a video whose failure may pass another time
  (transport, 5xx, timeouts, expired downloads, internal job errors, rows never sent).
* ``failed``: every row without a video, permanent failures (rejected, moderation) too.
* ``kinds``: only rows whose ``error_kind`` is one of these. Rows another run was
  working on (``claimed_elsewhere``) are taken only when their kind is asked for.
* ``include_unknown``: also rows whose create may have started a job that never answered
  (``submit_unknown``); sending them again may pay twice, so it is never the default.
* Invalid rows (``invalid_input``) and rows never read (``input_changed``) have no work in
  the manifest to run again: they are fixed in, and run from, the input.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from i2v.errors import ConfigError, InputError
from i2v.inputs.csv_reader import ROW_INDEX_COLUMN
from i2v.inputs.image_cells import INPUTS_PREFIX
from i2v.inputs.row import sniff_image_type
from i2v.storage.destination import Destination

Selector = Literal["retryable", "failed"]
#: Why a row is not run again: its video is there (``done``), or what would take it.
Reason = Literal["done", "permanent", "unknown", "claimed", "other_kind", "invalid", "unread"]
MANIFEST_NAMES = ("manifest.parquet", "manifest.csv")
_RUN_MANIFEST = re.compile(r"^runs/[^/]+/manifest\.parquet$")
#: Skips that point at a video that exists: never re-run.
_HAVE_VIDEO = ("already_done", "duplicate")
_UNKNOWN = "submit_unknown"
_CLAIMED = "claimed_elsewhere"
_INVALID = "invalid_input"
#: The manifest columns a rerun reads.
COLUMNS = (
    "row_key",
    "row_index",
    "id",
    "image_url",
    "prompt",
    "model",
    "route",
    "params",
    "status",
    "error_kind",
    "error_message",
    "retryable",
    "run",
)
#: What ``manifest.csv`` prefixes with ``'`` (see :func:`i2v.manifest.run_table.neutralise`).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INTEGERS = ("row_index", "attempts")
_FLOATS = ("credits_used", "usd_spent")


@dataclass(frozen=True)
class ManifestRef:
    """Where a manifest is: the destination's URI (a folder or ``s3://bucket/prefix``) and its key there."""

    dest: str
    key: str

    @property
    def uri(self) -> str:
        return f"{self.dest.rstrip('/')}/{self.key}"


def locate(uri: str) -> ManifestRef:
    """The destination and key of a destination's manifest or a run's (``runs/<run>/manifest.*``).

    A local path is made absolute, so ``runs/<run>/manifest.parquet`` given from inside
    the destination names the destination, not the run's folder.
    """
    if uri.startswith("s3://"):
        bucket, _, path = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ConfigError(f"{uri} has no bucket name")
        parts = [part for part in path.split("/") if part]
        root = f"s3://{bucket}"
    elif "://" in uri:
        raise ConfigError(f"{uri}: a manifest is a local path or an s3:// URI")
    else:
        absolute = os.path.abspath(uri)
        parts = [part for part in absolute.split(os.sep) if part]
        root = os.sep
    if not parts or parts[-1] not in MANIFEST_NAMES:
        raise ConfigError(
            f"{uri} is not a manifest: give a destination's manifest.parquet or manifest.csv,"
            " or a run's runs/<run>/manifest.parquet"
        )
    keep = 1
    if len(parts) >= 3 and parts[-3] == "runs":
        keep = 3
    key = "/".join(parts[-keep:])
    folder = parts[:-keep]
    if root == os.sep:
        return ManifestRef(os.sep + os.sep.join(folder), key)
    return ManifestRef("/".join([root, *folder]), key)


def split_manifest_uri(uri: str) -> tuple[str, str]:
    """(destination URI, key of the manifest in it) for a destination's or a run's manifest."""
    ref = locate(uri)
    return ref.dest, ref.key


@dataclass(frozen=True)
class Selection:
    """Which rows of a manifest to run again."""

    select: Selector = "retryable"
    kinds: tuple[str, ...] = ()
    include_unknown: bool = False

    def sort(self, row: Mapping[str, Any]) -> Reason | None:
        """None when the manifest row is one to run again; else why it is left."""
        kind = row.get("error_kind")
        if row.get("row_key") is None:
            return "invalid" if kind == _INVALID else "unread"
        if row["status"] == "completed" or kind in _HAVE_VIDEO:
            return "done"
        if kind == _UNKNOWN:
            return None if self.include_unknown else "unknown"
        if kind == _CLAIMED and kind not in self.kinds:
            return "claimed"
        if self.kinds and kind not in self.kinds:
            return "other_kind"
        return None if self.select == "failed" or bool(row.get("retryable")) else "permanent"

    def wants(self, row: Mapping[str, Any]) -> bool:
        """Whether the manifest row is one to run again."""
        return self.sort(row) is None


@dataclass(frozen=True)
class Chosen:
    """A row a rerun runs again, as a person is shown it."""

    row_index: int
    id: str | None
    error_kind: str | None
    error_message: str | None
    run: str | None
    image_url: str


@dataclass
class RerunPlan:
    """What a rerun of one manifest does: the rows it runs, by kind, and the rows it leaves, by why and kind."""

    manifest: str
    selection: Selection
    total: int = 0
    chosen: list[Chosen] = field(default_factory=list)
    left: dict[Reason, Counter[str]] = field(default_factory=dict)
    #: Kinds asked for (``--kind``) that no row of the manifest has.
    unmatched_kinds: tuple[str, ...] = ()

    @property
    def by_kind(self) -> Counter[str]:
        """The chosen rows by ``error_kind``."""
        return Counter(row.error_kind or "unknown" for row in self.chosen)

    def left_count(self, reason: Reason) -> int:
        return sum(self.left.get(reason, Counter()).values())

    def as_dict(self) -> dict[str, Any]:
        """The plan as plain data (counts only)."""
        return {
            "manifest": self.manifest,
            "rows": self.total,
            "to_run": len(self.chosen),
            "to_run_by_kind": dict(self.by_kind.most_common()),
            "left": {reason: dict(kinds.most_common()) for reason, kinds in self.left.items()},
            "unmatched_kinds": list(self.unmatched_kinds),
        }


def plan_rows(rows: Iterable[Mapping[str, Any]], selection: Selection, *, manifest: str) -> RerunPlan:
    """Sort ``rows`` (manifest rows by column) into the ones to run again and the ones left."""
    plan = RerunPlan(manifest, selection)
    kinds_seen: set[str] = set()
    for row in rows:
        plan.total += 1
        kind = row.get("error_kind")
        if kind:
            kinds_seen.add(str(kind))
        reason = selection.sort(row)
        if reason is None:
            plan.chosen.append(_chosen(row))
        else:
            plan.left.setdefault(reason, Counter())[str(kind or row.get("status") or "unknown")] += 1
    plan.chosen.sort(key=lambda row: row.row_index)
    plan.unmatched_kinds = tuple(kind for kind in selection.kinds if kind not in kinds_seen)
    return plan


def plan_rerun(dest: Destination, key: str, selection: Selection) -> RerunPlan:
    """What a rerun of the manifest at ``key`` does (reads manifests, nothing else)."""
    plan = plan_rows(manifest_rows(dest, key), selection, manifest=dest.uri_for(key))
    if key in MANIFEST_NAMES:
        add_rows_without_work(plan, dest)
    return plan


def add_rows_without_work(plan: RerunPlan, dest: Destination) -> None:
    """Count in ``plan`` the invalid and unread rows of ``dest``'s runs, each once.

    The destination's manifest holds no such row (without work there is no row key to
    merge on), so a plan of it takes them from the runs' own manifests.
    """
    seen: set[tuple[Any, ...]] = set()
    for run_key in sorted(key for key in dest.list_sizes("runs/") if _RUN_MANIFEST.match(key)):
        for row in manifest_rows(dest, run_key):
            sign = (row.get("row_index"), row.get("id"), row.get("image_url"), row.get("prompt"))
            if row.get("row_key") is None and sign not in seen:
                seen.add(sign)
                reason = plan.selection.sort(row) or "unread"
                plan.left.setdefault(reason, Counter())[str(row.get("error_kind") or "unknown")] += 1


def _chosen(row: Mapping[str, Any]) -> Chosen:
    return Chosen(
        row_index=int(row.get("row_index") or 0),
        id=row.get("id"),
        error_kind=row.get("error_kind"),
        error_message=row.get("error_message"),
        run=row.get("run"),
        image_url=str(row.get("image_url") or ""),
    )


def missing_images(dest: Destination, rows: Sequence[Chosen]) -> list[Chosen]:
    """The rows whose kept input image (``inputs/...``) is not in the destination (one listing of ``inputs/``)."""
    kept = [row for row in rows if _kept_image(row.image_url)]
    if not kept:
        return []
    present = dest.list_sizes(INPUTS_PREFIX)
    return [row for row in kept if row.image_url not in present]


def write_input(dest: Destination, manifest_key: str, selection: Selection, out: Path) -> int:
    """Write the chosen rows of ``manifest_key`` as a CSV input at ``out``, in row order; returns how many.

    Each row keeps its manifest ``row_index`` (the hidden column
    :data:`~i2v.inputs.csv_reader.ROW_INDEX_COLUMN`) and its ``id``.
    """
    rows = [row for row in manifest_rows(dest, manifest_key) if selection.wants(row)]
    rows.sort(key=lambda row: int(row.get("row_index") or 0))
    params = sorted({name for row in rows for name in json.loads(row.get("params") or "{}")})
    columns = [ROW_INDEX_COLUMN, "id", "image_url", "prompt", "model", "api_path", *params]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            values = json.loads(row.get("params") or "{}")
            cells = {
                ROW_INDEX_COLUMN: str(int(row.get("row_index") or 0)),
                "id": row.get("id") or "",
                "image_url": _image(dest, str(row["image_url"])),
                "prompt": row["prompt"],
                "model": row.get("model") or "",
                "api_path": row.get("route") or "",
                **{name: _cell(values.get(name)) for name in params},
            }
            writer.writerow([cells[name] for name in columns])
    return len(rows)


def manifest_rows(dest: Destination, key: str, columns: Sequence[str] = COLUMNS) -> Iterator[dict[str, Any]]:
    """The rows of a manifest (Parquet or CSV, by its name) as dicts of ``columns``, a batch at a time.

    A CSV manifest's cells are typed back (integers, booleans, empty cells as None) and
    the ``'`` it puts before a formula-like cell is taken off. Raises :class:`ConfigError`
    when there is no manifest at ``key`` or it cannot be read as one.
    """
    with dest.local_file(key) as path:
        if path is None:
            raise ConfigError(f"no manifest at {dest.uri_for(key)}")
        try:
            if key.endswith(".csv"):
                yield from _csv_rows(path, columns, dest.uri_for(key))
            else:
                yield from _parquet_rows(path, columns, dest.uri_for(key))
        except (pa.ArrowException, csv.Error, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{dest.uri_for(key)} cannot be read as a manifest: {exc}") from None


def _parquet_rows(path: Path, columns: Sequence[str], shown: str) -> Iterator[dict[str, Any]]:
    with pq.ParquetFile(path, pre_buffer=False) as source:
        names = source.schema_arrow.names
        _check_columns(names, shown)
        present = [name for name in columns if name in names]
        for batch in source.iter_batches(columns=present, use_threads=False):
            for row in batch.to_pylist():
                yield {name: row.get(name) for name in columns}


def _csv_rows(path: Path, columns: Sequence[str], shown: str) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_columns(reader.fieldnames or (), shown)
        for record in reader:
            yield {name: _typed(name, record.get(name)) for name in columns}


def _check_columns(names: Sequence[str], shown: str) -> None:
    missing = [name for name in ("row_key", "row_index", "status", "prompt", "image_url") if name not in names]
    if missing:
        raise ConfigError(f"{shown} is not an i2v manifest: it lacks the column(s) {', '.join(missing)}")


def _typed(name: str, cell: str | None) -> Any:
    """A CSV manifest's cell as the Parquet manifest holds it."""
    if cell is None or cell == "":
        return None
    if name in _INTEGERS:
        return int(cell)
    if name in _FLOATS:
        return float(cell)
    if name == "retryable":
        return cell.strip().lower() in ("true", "1")
    if cell[:1] == "'" and cell[1:2] in _FORMULA_START:
        return cell[1:]
    return cell


def _kept_image(ref: str) -> bool:
    return ref.startswith(INPUTS_PREFIX) and posixpath.normpath(ref) == ref


def _image(dest: Destination, ref: str) -> str:
    """The image as an input cell: a URL as it is, a kept copy as a data URI."""
    if not _kept_image(ref):
        return ref
    data = dest.get_bytes(ref)
    if data is None:
        raise InputError(f"the input image {dest.uri_for(ref)} named by the manifest is missing")
    mime = sniff_image_type(data) or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def kinds_of(values: Sequence[str] | None) -> tuple[str, ...]:
    """Failure kinds given on a command line or as a parameter, cleaned."""
    return tuple(sorted({value.strip() for value in values or () if value.strip()}))
