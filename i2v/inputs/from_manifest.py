"""Re-running chosen rows of a manifest, from nothing but the destination.

A manifest row carries everything its work needs: the prompt, the model and its path,
the parameters, and the image (its URL, or the key of the copy kept under ``inputs/``).
:func:`write_input` turns the chosen rows back into an input file the pipeline reads
like any other, so a rerun goes through the same checks, keys and journal as a first
run: a job still running is re-attached, a stored video skipped, nothing paid twice.

Which rows:

* ``retryable`` (the default): rows without a video whose failure may pass another time
  (transport, 5xx, timeouts, expired downloads, internal job errors, rows never sent).
* ``failed``: every row without a video, permanent failures (rejected, moderation) too.
* ``kinds``: only rows whose ``error_kind`` is one of these.
* ``include_unknown``: also rows whose create may have started a job that never answered
  (``submit_unknown``); sending them again may pay twice, so it is never the default.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from i2v.errors import ConfigError, InputError
from i2v.inputs.row import sniff_image_type
from i2v.inputs.validation import INPUTS_PREFIX
from i2v.storage.destination import Destination

Selector = Literal["retryable", "failed"]
#: Skips that point at a video that exists: never re-run.
_HAVE_VIDEO = ("already_done", "duplicate")
_UNKNOWN = "submit_unknown"


@dataclass(frozen=True)
class Selection:
    """Which rows of a manifest to run again."""

    select: Selector = "retryable"
    kinds: tuple[str, ...] = ()
    include_unknown: bool = False

    def wants(self, row: Mapping[str, Any]) -> bool:
        """Whether the manifest row is one to run again."""
        if row.get("row_key") is None or row["status"] == "completed" or row.get("error_kind") in _HAVE_VIDEO:
            return False
        kind = row.get("error_kind")
        if kind == _UNKNOWN:
            return self.include_unknown
        if self.kinds and kind not in self.kinds:
            return False
        return self.select == "failed" or bool(row.get("retryable"))


def split_manifest_uri(uri: str) -> tuple[str, str]:
    """(destination URI, key of the manifest in it) for a root or a run's manifest."""
    cleaned = uri.rstrip("/")
    parts = cleaned.split("/")
    if len(parts) >= 4 and parts[-3] == "runs" and parts[-1] == "manifest.parquet":
        return "/".join(parts[:-3]) or "/", "/".join(parts[-3:])
    if parts[-1] != "manifest.parquet":
        raise ConfigError(f"{uri} is not a manifest: expected .../manifest.parquet")
    return "/".join(parts[:-1]) or "/", parts[-1]


def write_input(dest: Destination, manifest_key: str, selection: Selection, out: Path) -> int:
    """Write the chosen rows of ``manifest_key`` as a CSV input at ``out``; returns how many."""
    raw = dest.get_bytes(manifest_key)
    if raw is None:
        raise ConfigError(f"no manifest at {dest.uri_for(manifest_key)}")
    rows = [row for row in _rows(raw) if selection.wants(row)]
    params = sorted({name for row in rows for name in json.loads(row.get("params") or "{}")})
    columns = ["id", "image_url", "prompt", "model", "api_path", *params]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            values = json.loads(row.get("params") or "{}")
            cells = {
                "id": row.get("id") or "",
                "image_url": _image(dest, str(row["image_url"])),
                "prompt": row["prompt"],
                "model": row.get("model") or "",
                "api_path": row.get("route") or "",
                **{name: _cell(values.get(name)) for name in params},
            }
            writer.writerow([cells[name] for name in columns])
    return len(rows)


def _rows(raw: bytes) -> Iterator[dict[str, Any]]:
    columns = ["row_key", "id", "image_url", "prompt", "model", "route", "params", "status", "error_kind", "retryable"]
    source = pq.ParquetFile(io.BytesIO(raw))
    present = [name for name in columns if name in source.schema_arrow.names]
    for batch in source.iter_batches(columns=present):
        yield from batch.to_pylist()


def _image(dest: Destination, ref: str) -> str:
    """The image as an input cell: a URL as it is, a kept copy as a data URI."""
    if not ref.startswith(INPUTS_PREFIX) or posixpath.normpath(ref) != ref:
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
