"""Inputs beyond a local CSV: Parquet and JSON Lines with the same columns, and files and images on S3."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from i2v.errors import InputError
from i2v.inputs.shards import plan
from i2v.inputs.sources import S3Opener, input_format
from i2v.inputs.validation import read_rows, read_shard
from tests.emulated import emulator
from tests.runs import cli_env, run

ROWS = [
    {"id": f"r{i}", "image_url": "a.png", "prompt": f'Scene {i}, quoted "x", comma', "duration": 5 if i % 2 else 10}
    for i in range(7)
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with ``a.png`` and the same seven rows as CSV."""
    Image.new("RGB", (16, 9), (90, 20, 30)).save(tmp_path / "a.png")
    pd.DataFrame(ROWS).to_csv(tmp_path / "rows.csv", index=False)
    return tmp_path


def _keys(path: Path | str, rows_per_shard: int, **options: Any) -> list[str]:
    """Row keys of every shard of ``path``, read shard by shard."""
    planned = plan(path, rows_per_shard=rows_per_shard, **options)
    opener = options.get("opener")
    extra = {"opener": opener} if opener else {}
    return [row.key for shard in planned.shards for row in read_shard(planned, shard, **extra).rows]


def test_format_comes_from_the_extension_or_the_option() -> None:
    """.parquet, .jsonl and .ndjson are recognised; anything else is CSV; an unknown --format is an error."""
    assert [input_format(p) for p in ("a.parquet", "s3://b/a.JSONL", "a.ndjson", "a.txt", "a")] == [
        "parquet",
        "jsonl",
        "jsonl",
        "csv",
        "csv",
    ]
    assert input_format("a.txt", "parquet") == "parquet"
    with pytest.raises(InputError, match="unknown input format 'xlsx'"):
        input_format("a.xlsx", "xlsx")


@pytest.mark.parametrize("rows_per_shard", [1, 2, 3, 100])
def test_parquet_rows_are_the_csv_rows_whatever_the_row_groups_and_shards(folder: Path, rows_per_shard: int) -> None:
    """A Parquet copy in row groups of three gives the same rows, keys and order, shard by shard."""
    pq.write_table(pa.Table.from_pylist(ROWS), folder / "rows.parquet", row_group_size=3)
    from_csv = [row.key for row in read_rows(folder / "rows.csv").rows]
    assert len(from_csv) == len(ROWS)
    assert [row.key for row in read_rows(folder / "rows.parquet").rows] == from_csv
    assert _keys(folder / "rows.parquet", rows_per_shard) == from_csv


def test_json_lines_rows_match_and_bad_lines_fail_alone(folder: Path) -> None:
    """JSON Lines gives the CSV's rows; a line that is not an object fails its row, naming its line."""
    lines = [json.dumps(row) for row in ROWS]
    lines[2:2] = ["", "not json", "[1, 2]"]
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    from_csv = [row.key for row in read_rows(folder / "rows.csv").rows]
    result = read_rows(folder / "rows.jsonl")
    assert [row.key for row in result.rows] == from_csv
    assert [(bad.line, bad.reason.split(" (")[0]) for bad in result.invalid] == [
        (4, "is not valid JSON"),
        (5, "is a JSON list, not an object"),
    ]
    assert _keys(folder / "rows.jsonl", 2) == from_csv


def test_a_file_that_is_not_parquet_is_one_clear_error(folder: Path) -> None:
    """A CSV named .parquet is a file error naming the file, before any row."""
    (folder / "fake.parquet").write_text("image_url,prompt\na.png,x\n")
    with pytest.raises(InputError, match=r"fake\.parquet is not a readable Parquet file"):
        plan(folder / "fake.parquet", rows_per_shard=10)


def test_an_s3_csv_is_read_in_ranges_and_sharded_like_a_local_one(s3_client: Any, bucket: str, folder: Path) -> None:
    """Shards of an S3 CSV, read by ranged GETs from their offsets, give the local file's rows."""
    rows = [{**row, "image_url": f"s3://{bucket}/images/a.png"} for row in ROWS * 300]
    for n, row in enumerate(rows):
        row["prompt"], row["id"] = f"{row['prompt']} #{n}", f"r{n}"
    pd.DataFrame(rows).to_csv(folder / "many.csv", index=False)
    s3_client.upload_file(str(folder / "many.csv"), bucket, "in/many.csv")
    opener = S3Opener(s3_client)
    local = [row.key for row in read_rows(folder / "many.csv").rows]
    assert len(local) == 2100
    assert _keys(f"s3://{bucket}/in/many.csv", 500, opener=opener) == local
    with pytest.raises(InputError, match="input file not found"):
        plan(f"s3://{bucket}/in/nope.csv", rows_per_shard=10, opener=opener)


def test_run_from_an_s3_csv_with_s3_images_against_the_s3_server(
    s3_client: Any, bucket: str, aws_env: str, tmp_path: Path
) -> None:
    """`i2v run s3://…/rows.csv` reads the input from S3, sends s3:// images as presigned URLs, writes to S3."""
    Image.new("RGB", (64, 36), (30, 160, 90)).save(tmp_path / "green.png")
    s3_client.upload_file(str(tmp_path / "green.png"), bucket, "images/green.png")
    text = "id,image_url,prompt,duration\n" + "".join(
        f"g{i},s3://{bucket}/images/green.png,Grass waves {i},5\n" for i in range(3)
    )
    s3_client.put_object(Bucket=bucket, Key="inbox/rows.csv", Body=text.encode())
    with emulator(generation_seconds=0.2) as emu:
        env = cli_env(emu.base_url, emu.api_key, tmp_path / "prefect")
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
        args = ["run", f"s3://{bucket}/inbox/rows.csv", "--dest", f"s3://{bucket}/out", "--poll-interval", "0.2"]
        assert run(args, env, tmp_path / "run.log") == 0, (tmp_path / "run.log").read_text()[-3000:]
        stats = emu.stats()
    assert stats["creates"] == 3
    body = s3_client.get_object(Bucket=bucket, Key="out/manifest.parquet")["Body"].read()
    manifest = pd.read_parquet(pa.BufferReader(body))
    assert sorted(manifest["status"]) == ["completed"] * 3
    assert set(manifest["image_url"]) == {f"s3://{bucket}/images/green.png"}, "the manifest names the S3 image"
