"""``metadata.jsonl``: the destination as a Hugging Face ``videofolder`` for training code.

One JSON object per line, one line per completed row of the destination's merged
manifest (:mod:`i2v.manifest.merged`), beside the videos at the destination's root::

    {"file_name": "videos/sunset.mp4", "id": "sunset", "prompt": "...", "resolution": "480p", ...}

``file_name`` is the video's path relative to the file's folder, which is how
``datasets.load_dataset("videofolder", data_dir=DEST)`` (and the Hub's viewer) pairs
each video with its columns; the other files of the destination (thumbnails, inputs,
records, manifests) are no videos and no metadata file to it, so they are left out.
The request's usual parameters are columns of their own, the rest stay in ``params``
(JSON text, so that every line has the same columns whatever its model). Each column has
one type on every line, so that a loader never infers a column of nulls: text columns
are ``""`` when empty, ``resolution`` and ``duration`` are what the video was asked for
(the row's value, else the model's default). ``input_image`` is the input image: its
copy's path in the destination (``inputs/<sha256>.<ext>``, for local and inline images)
or its URL.

The file is rewritten whole at every publish, streamed (a batch of manifest rows at a
time, read from a local file of the root) through the destination's atomic writer:
readers see the previous file or the new one, never half of one. Runs finishing
together each rewrite it from the root they read; a run that finds the root grew
meanwhile writes it again, so the last one to finish leaves it whole, as with the root
manifest itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from typing import Any

import pyarrow.parquet as pq

from i2v.api.models import get_model
from i2v.manifest.merged import ROOT, included_runs, runs_in
from i2v.manifest.run_table import open_parquet
from i2v.storage.destination import Destination

METADATA = "metadata.jsonl"
CONTENT_TYPE = "application/jsonl"
#: Request parameters that get a column of their own, on every line (null when not sent).
PARAM_COLUMNS = ("resolution", "duration", "aspect_ratio", "seed", "negative_prompt")
#: Manifest columns copied as they are.
_COPIED = ("id", "row_key", "prompt", "model")
#: Columns of text, ``""`` when empty.
_TEXT = ("id", "row_key", "prompt", "model", "aspect_ratio", "negative_prompt", "mismatch", "input_image")
_MEASURED = ("duration_s", "width", "height", "fps", "mismatch")
_READ = ("status", "video_uri", "image_url", "params", *_COPIED, *_MEASURED)
_BATCH_ROWS = 4096
#: Lines joined into one write (a few hundred kilobytes).
_LINES_PER_WRITE = 1024


def write_metadata(dest: Destination, *, max_rounds: int = 20) -> str | None:
    """Rewrite ``metadata.jsonl`` from the destination's merged manifest; returns its URI.

    None when the destination has no merged manifest yet.
    """
    for _ in range(max_rounds):
        with dest.local_file(ROOT) as path:
            if path is None:
                return None
            with open_parquet(path) as root:
                runs = runs_in(root)
                _write(dest, root)
        if included_runs(dest) == runs:
            break
    return dest.uri_for(METADATA)


def metadata_lines(manifest: pq.ParquetFile, key_for: Callable[[str], str | None]) -> Iterator[str]:
    """The lines of ``metadata.jsonl`` for a merged manifest, a batch of rows at a time.

    ``key_for`` turns a ``video_uri`` into its key under the destination (a key already, or
    an absolute URI of an older manifest; None: elsewhere, so no path relative to the file
    can reach it, and the row is left out).
    """
    present = set(manifest.schema_arrow.names)
    columns = [name for name in _READ if name in present]
    for batch in manifest.iter_batches(batch_size=_BATCH_ROWS, columns=columns, use_threads=False):
        for row in batch.to_pylist():
            if row.get("status") != "completed" or not row.get("video_uri"):
                continue
            key = key_for(row["video_uri"])
            if key is None:
                continue
            yield json.dumps(_line(key, row), ensure_ascii=False, allow_nan=False) + "\n"


def _line(key: str, row: Mapping[str, Any]) -> dict[str, Any]:
    params = json.loads(row.get("params") or "{}")
    asked = {**_model_defaults(row.get("model")), **params}
    line: dict[str, Any] = {"file_name": key, "input_image": row.get("image_url")}
    line.update((name, row.get(name)) for name in _COPIED)
    line.update((name, asked.get(name)) for name in PARAM_COLUMNS)
    line["params"] = json.dumps(params, sort_keys=True)
    line.update((name, _finite(row.get(name))) for name in _MEASURED)
    for name in _TEXT:
        line[name] = "" if line.get(name) is None else str(line[name])
    if line["duration"] is not None:
        line["duration"] = int(line["duration"])
    if line["resolution"] is not None:
        line["resolution"] = str(line["resolution"])
    return line


def _model_defaults(model: str | None) -> dict[str, Any]:
    """What a row of ``model`` asks for when it gives no resolution or duration."""
    try:
        route = get_model(model or "").route()
    except KeyError:
        return {}
    return {name: route.params[name].default for name in ("resolution", "duration") if name in route.params}


def _finite(value: Any) -> Any:
    """JSON has no NaN: a measure that is not a number is missing."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _write(dest: Destination, root: pq.ParquetFile) -> None:
    lines = metadata_lines(root, dest.key_of)
    writer = dest.open_writer(METADATA, CONTENT_TYPE)
    try:
        while chunk := "".join(islice(lines, _LINES_PER_WRITE)):
            writer.write(chunk.encode())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
