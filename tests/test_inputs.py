"""Reading an input as records and cutting it into shards found by byte offset."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2v.errors import InputError
from i2v.inputs.csv_reader import all_records, read_header
from i2v.inputs.shards import plan, read_records
from i2v.inputs.validation import read_rows, read_shard

TRICKY = (
    "\ufeffid,image_url,prompt\r\n"
    'a,x.png,"one, with a comma"\r\n'
    "\r\n"
    'b,x.png,"two\nlines"\r\n'
    "c,x.png,café ☕\r\n"
    ",,\r\n"
    'd,x.png,"quote ""inside"""\r\n'
    "e,x.png,last without newline"
)


def _write(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_records_survive_bom_crlf_quotes_newlines_and_blank_lines(tmp_path: Path) -> None:
    """Quoted commas and newlines stay in their cell; blank lines are no rows; line numbers are the file's."""
    records = list(all_records(_write(tmp_path, TRICKY)))
    assert [r.cells["id"] for r in records] == ["a", "b", "c", "d", "e"]
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert records[0].cells["prompt"] == "one, with a comma"
    assert records[1].cells["prompt"] == "two\nlines"
    assert records[2].cells["prompt"] == "café ☕"
    assert records[3].cells["prompt"] == 'quote "inside"'
    assert [r.line for r in records] == [2, 4, 6, 8, 9]
    assert read_header(tmp_path / "rows.csv") == ("id", "image_url", "prompt")


@pytest.mark.parametrize("rows_per_shard", [1, 2, 3, 5, 100])
def test_shards_read_from_their_offsets_give_exactly_the_whole_file(tmp_path: Path, rows_per_shard: int) -> None:
    """Reading every shard from its byte offset yields every record once, in order, with the same line numbers."""
    path = _write(tmp_path, TRICKY)
    whole = [(r.index, r.line, r.cells) for r in all_records(path)]
    planned = plan(path, rows_per_shard=rows_per_shard)
    assert planned.total_rows == 5
    assert sum(shard.rows for shard in planned.shards) == 5
    assert all(shard.rows <= rows_per_shard for shard in planned.shards)
    pieces = [(r.index, r.line, r.cells) for shard in planned.shards for r in read_records(planned, shard)]
    assert pieces == whole


def test_an_id_reused_for_other_work_in_another_shard_is_caught(tmp_path: Path) -> None:
    """The plan sees the whole file, so an id taken by an earlier shard fails the later row."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    path = _write(tmp_path, "id,image_url,prompt\nsame,x.png,First\nother,x.png,Second\nsame,x.png,Third\n")
    planned = plan(path, rows_per_shard=2)
    assert [len(s.id_conflicts) for s in planned.shards] == [0, 1]
    last = read_shard(planned, planned.shards[1])
    (bad,) = last.invalid
    assert (bad.index, bad.field) == (2, "id")
    assert "already used by row 0" in bad.reason
    assert read_rows(path).invalid[0].index == 2, "the same verdict without shards"


def test_files_that_are_not_usable_csv_fail_before_any_row(tmp_path: Path) -> None:
    """Empty files, missing columns and folders are one InputError naming the file."""
    with pytest.raises(InputError, match="is empty"):
        plan(_write(tmp_path, "", "empty.csv"), rows_per_shard=10)
    with pytest.raises(InputError, match=r"lacks the column\(s\) prompt"):
        plan(_write(tmp_path, "image_url,text\nx.png,hi\n", "cols.csv"), rows_per_shard=10)
    with pytest.raises(InputError, match="is a folder"):
        plan(tmp_path, rows_per_shard=10)
    with pytest.raises(InputError, match="at least 1"):
        plan(_write(tmp_path, TRICKY), rows_per_shard=0)


def test_a_header_only_file_has_no_rows(tmp_path: Path) -> None:
    """A header with no rows plans to nothing, without an error."""
    planned = plan(_write(tmp_path, "image_url,prompt\n"), rows_per_shard=10)
    assert (planned.total_rows, planned.shards) == (0, ())
