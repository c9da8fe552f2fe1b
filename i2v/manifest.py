"""The manifest table: one row per input row, as Parquet and CSV.

The latest run's manifest sits at the destination's root (``manifest.parquet``,
``manifest.csv``); every run also keeps its own copy under ``runs/<run>/``. Each file is
written whole and atomically through the destination, so a reader never sees half a
table.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict

import pandas as pd

from i2v.outcomes import COLUMNS, RowOutcome
from i2v.storage import Destination

_TIMESTAMPS = ("submitted_at", "completed_at")
_INTEGERS = ("row_index", "submit_attempts", "polls", "video_bytes", "width", "height")
_FLOATS = ("generation_seconds", "duration_s", "fps", "credits_used")


def to_frame(outcomes: Sequence[RowOutcome]) -> pd.DataFrame:
    """The manifest as a typed DataFrame, ordered by input row."""
    frame = pd.DataFrame([asdict(o) for o in outcomes], columns=list(COLUMNS))
    frame = frame.sort_values("row_index", kind="stable").reset_index(drop=True)
    for name in _TIMESTAMPS:
        frame[name] = pd.to_datetime(frame[name], unit="s", utc=True)
    for name in _INTEGERS:
        frame[name] = frame[name].astype("Int64")
    for name in _FLOATS:
        frame[name] = frame[name].astype("Float64")
    frame["retryable"] = frame["retryable"].astype("boolean")
    for name in COLUMNS:
        if frame[name].dtype == object:
            frame[name] = frame[name].astype("string")
    return frame


def write_manifest(dest: Destination, outcomes: Sequence[RowOutcome], *, run_name: str) -> dict[str, str]:
    """Write the run's manifest and make it the latest; returns the URIs written."""
    frame = to_frame(outcomes)
    parquet = _parquet_bytes(frame)
    csv = frame.to_csv(index=False).encode()
    written = {}
    for key, data, kind in (
        (f"runs/{run_name}/manifest.parquet", parquet, "application/vnd.apache.parquet"),
        (f"runs/{run_name}/manifest.csv", csv, "text/csv"),
        ("manifest.parquet", parquet, "application/vnd.apache.parquet"),
        ("manifest.csv", csv, "text/csv"),
    ):
        dest.put_bytes(key, data, kind)
        written[key] = dest.uri_for(key)
    return written


def read_outcomes(dest: Destination, key: str = "manifest.parquet") -> list[RowOutcome]:
    """The outcomes of a manifest written by :func:`write_manifest` (empty if there is none)."""
    raw = dest.get_bytes(key)
    if raw is None:
        return []
    frame = pd.read_parquet(io.BytesIO(raw))
    for name in _TIMESTAMPS:
        frame[name] = frame[name].map(lambda t: None if pd.isna(t) else t.timestamp()).astype(object)
    frame = frame.astype(object).where(frame.notna(), None)
    return [RowOutcome(**{str(k): v for k, v in record.items()}) for record in frame.to_dict("records")]


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
