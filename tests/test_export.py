"""metadata.jsonl: every completed row of the merged manifest, laid out as a Hugging Face videofolder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from i2v.emulator.render import render_video
from i2v.manifest import merged
from i2v.manifest import run_table as manifest
from i2v.manifest import videofolder as export
from i2v.outcomes import RowOutcome
from i2v.storage.destination import Destination
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination
from tests.test_merged import drop_mismatch

COLUMNS = [
    "file_name",
    "input_image",
    "id",
    "row_key",
    "prompt",
    "model",
    "resolution",
    "duration",
    "aspect_ratio",
    "seed",
    "negative_prompt",
    "params",
    "duration_s",
    "width",
    "height",
    "fps",
    "mismatch",
]


def _row(dest: Destination, key: str, index: int, status: str, run: str, **fields: Any) -> RowOutcome:
    """A manifest row of ``run``; a completed one points at ``videos/<key>.mp4`` in ``dest``."""
    asked = {"duration": 5, "resolution": "480p", "aspect_ratio": "16:9", "seed": index}
    fields.setdefault("params", json.dumps(asked))
    video: dict[str, Any] = {}
    if status == "completed":
        video = {"video_uri": dest.uri_for(f"videos/{key}.mp4"), "duration_s": 1.0, "width": 28, "height": 16}
    return RowOutcome(
        row_key=key,
        row_index=index,
        id=key,
        image_url="https://example.com/x.png",
        prompt=f"Prompt {key} \u00e9t\u00e9",
        model="alibaba/wan2.5-i2v-preview",
        route="universal",
        status=status,  # type: ignore[arg-type]
        run=run,
        **{**video, **fields},
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_every_completed_row_of_the_merged_state_gets_a_line_with_its_file(tmp_path: Path) -> None:
    """Completed rows of all runs, not failures or invalid rows; file_name resolves beside metadata.jsonl."""
    dest = LocalDestination(tmp_path)
    for key in ("a", "c", "e"):
        render_video(None, seconds=1, aspect_ratio="16:9", short_side=16, fps=2, seed=1, out=tmp_path / f"{key}.mp4")
        dest.put_bytes(f"videos/{key}.mp4", (tmp_path / f"{key}.mp4").read_bytes(), "video/mp4")
    note = "duration 5s asked, 1.0s got"
    manifest.write_manifest(
        dest,
        [
            _row(dest, "a", 0, "completed", "r1", mismatch=note),
            _row(dest, "b", 1, "failed", "r1", error_kind="timeout"),
            _row(dest, "c", 2, "completed", "r1"),
        ],
        run="r1",
    )
    manifest.write_manifest(
        dest,
        [
            _row(dest, "a", 0, "skipped", "r2", error_kind="already_done"),
            _row(dest, None, 1, "failed", "r2", error_kind="invalid_input"),  # type: ignore[arg-type]
            _row(dest, "e", 2, "completed", "r2", params='{"negative_prompt": "blur", "resolution": "720p"}'),
        ],
        run="r2",
    )
    merged.merge(dest)

    assert export.write_metadata(dest) == str(tmp_path / "metadata.jsonl")
    lines = _lines((tmp_path / "metadata.jsonl").read_text(encoding="utf-8"))
    assert [line["file_name"] for line in lines] == ["videos/a.mp4", "videos/c.mp4", "videos/e.mp4"]
    assert all(list(line) == COLUMNS for line in lines), "every line has the same columns, in order"
    assert all((tmp_path / line["file_name"]).is_file() for line in lines)
    first = lines[0]
    assert (first["id"], first["row_key"], first["prompt"]) == ("a", "a", "Prompt a \u00e9t\u00e9")
    assert (first["resolution"], first["duration"], first["aspect_ratio"], first["seed"]) == ("480p", 5, "16:9", 0)
    assert first["negative_prompt"] == "", "text columns are text on every line"
    assert first["input_image"] == "https://example.com/x.png", "the input image is on the line"
    assert json.loads(first["params"])["seed"] == 0
    assert (first["duration_s"], first["width"], first["height"], first["mismatch"]) == (1.0, 28, 16, note)
    assert lines[1]["mismatch"] == ""
    last = lines[2]
    # No duration asked: the model's default is what the video was made for.
    assert (last["negative_prompt"], last["resolution"], last["duration"], last["seed"]) == ("blur", "720p", 10, None)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file is left"

    manifest.write_manifest(dest, [_row(dest, "c", 0, "failed", "r3", error_kind="storage")], run="r3")
    merged.merge(dest)
    export.write_metadata(dest)
    again = _lines((tmp_path / "metadata.jsonl").read_text(encoding="utf-8"))
    assert [line["file_name"] for line in again] == ["videos/a.mp4", "videos/e.mp4"], "rewritten from the new state"


def test_no_merged_manifest_means_no_file(tmp_path: Path) -> None:
    """A destination no run has published to gets no metadata.jsonl."""
    assert export.write_metadata(LocalDestination(tmp_path)) is None
    assert not (tmp_path / "metadata.jsonl").exists()


def test_written_to_s3_in_several_writes(s3_client: Any, bucket: str) -> None:
    """On S3 the file holds one line per completed row, in manifest order, past one write's worth of lines."""
    dest = S3Destination(s3_client, bucket, "sets/one")
    rows = [_row(dest, f"k{i:05d}", i, "completed" if i % 3 else "failed", "r1") for i in range(2500)]
    manifest.write_manifest(dest, rows, run="r1")
    merged.merge(dest)

    assert export.write_metadata(dest) == f"s3://{bucket}/sets/one/metadata.jsonl"
    body = s3_client.get_object(Bucket=bucket, Key="sets/one/metadata.jsonl")["Body"].read().decode()
    lines = _lines(body)
    assert [line["file_name"] for line in lines] == [f"videos/k{i:05d}.mp4" for i in range(2500) if i % 3]
    assert {len(line) for line in lines} == {len(COLUMNS)}


def test_a_root_written_before_the_mismatch_column_still_exports(tmp_path: Path) -> None:
    """An older merged manifest without ``mismatch`` gives lines whose mismatch is null."""
    dest = LocalDestination(tmp_path)
    manifest.write_manifest(dest, [_row(dest, "a", 0, "completed", "r1")], run="r1")
    merged.merge(dest)
    drop_mismatch(tmp_path / "manifest.parquet")

    export.write_metadata(dest)
    (line,) = _lines((tmp_path / "metadata.jsonl").read_text())
    assert (line["file_name"], line["mismatch"]) == ("videos/a.mp4", "")


def test_videos_named_by_key_or_by_an_older_absolute_path_of_a_moved_folder_get_lines(tmp_path: Path) -> None:
    """Rows name videos by key now; rows of a folder since moved name them by its old path: both get their line."""
    dest = LocalDestination(tmp_path / "moved")
    rows = [
        _row(dest, "a", 0, "completed", "r1", video_uri="videos/a.mp4"),
        _row(dest, "b", 1, "completed", "r1", video_uri="/mnt/old-disk/out/videos/b.mp4"),
        _row(dest, "c", 2, "completed", "r1", video_uri="../outside.mp4"),
    ]
    manifest.write_manifest(dest, rows, run="r1")
    merged.merge(dest)

    export.write_metadata(dest)
    lines = _lines((tmp_path / "moved" / "metadata.jsonl").read_text())
    assert [line["file_name"] for line in lines] == ["videos/a.mp4", "videos/b.mp4"], "nothing outside the folder"


def test_columns_keep_one_type_when_every_value_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No video differed and no row gave a negative prompt: a loader still reads those columns as text, not nulls."""
    import datasets

    dest = LocalDestination(tmp_path)
    for key in ("a", "b"):
        (tmp_path / "videos").mkdir(exist_ok=True)
        (tmp_path / "videos" / f"{key}.mp4").write_bytes(b"x")
    manifest.write_manifest(
        dest, [_row(dest, "a", 0, "completed", "r1"), _row(dest, "b", 1, "completed", "r1")], run="r1"
    )
    merged.merge(dest)
    export.write_metadata(dest)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loaded = datasets.load_dataset(
        "json", data_files=str(tmp_path / "metadata.jsonl"), split="train", cache_dir=str(tmp_path / "hf")
    )
    for name in ("mismatch", "negative_prompt", "input_image", "resolution"):
        assert loaded.features[name].dtype == "string", name
    assert loaded.features["duration"].dtype == "int64"
