"""Input files that fight back: each is a clear file error before anything is sent, or per-row failures.

The outcome of reading any file is one of two things: an :class:`InputError` naming the
file and the line, or a row set in which every record of the file is exactly one row,
valid or invalid, with the invalid ones naming their row, line and field.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from i2v.errors import InputError
from i2v.inputs.csv_reader import all_records
from i2v.inputs.shards import plan
from i2v.inputs.validation import RowSet, read_rows, read_shard
from i2v.limits import MIB, Limits

HEADER = "id,image_url,prompt\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with one small PNG, ``a.png``."""
    Image.new("RGB", (16, 9), (10, 20, 30)).save(tmp_path / "a.png")
    return tmp_path


def _file(folder: Path, data: str | bytes, name: str = "rows.csv") -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _outcome(path: Path, limits: Limits | None = None) -> RowSet | InputError:
    """What reading ``path`` gives: the row set, or the one file error."""
    try:
        return read_rows(path, limits=limits)
    except InputError as exc:
        return exc


def _assert_accounted(result: RowSet) -> None:
    """Every record is exactly one row, valid or invalid; invalid ones name their row and line."""
    indices = sorted([row.index for row in result.rows] + [bad.index for bad in result.invalid])
    assert indices == list(range(result.total))
    for bad in result.invalid:
        assert bad.message.startswith(f"row {bad.index} (CSV line {bad.line})")


def test_a_one_megabyte_prompt_fails_its_row_and_the_others_proceed(folder: Path) -> None:
    """The prompt limit, not the CSV parser's field limit, decides: one row fails, naming the field."""
    path = _file(folder, HEADER + f"big,a.png,{'x' * MIB}\nok,a.png,Fine\n")
    result = read_rows(path)
    (bad,) = result.invalid
    assert (bad.index, bad.line, bad.field) == (0, 2, "prompt")
    assert "has 1,048,576 characters" in bad.reason
    assert len(bad.cells["prompt"]) < 200, "the manifest keeps a shortened cell, not a megabyte"
    assert [row.id for row in result.rows] == ["ok"]


def test_a_cell_larger_than_any_row_may_be_is_skipped_over_in_bounded_memory(folder: Path) -> None:
    """A 40 MB cell fails its row without being held: peak memory stays near the row limit."""
    limits = Limits(max_image_bytes=MIB)
    path = folder / "huge.csv"
    with path.open("wb") as handle:
        handle.write(HEADER.encode() + b"first,a.png,Before\nhuge,a.png,")
        for _ in range(40):
            handle.write(b"y" * MIB)
        handle.write(b"\nlast,a.png,After\n")
    tracemalloc.start()
    try:
        result = read_rows(path, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limits.max_row_bytes, f"peak {peak / MIB:.1f} MiB for a 40 MiB cell"
    (bad,) = result.invalid
    assert (bad.index, bad.line, bad.field) == (1, 3, None)
    assert "longer than the limit for one row" in bad.reason
    assert [row.id for row in result.rows] == ["first", "last"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"\n\n\n", "is empty"),
        (b"image_url,prompt,prompt\na.png,x,y\n", "names the column 'prompt' twice"),
        (b"image_url,text\na.png,x\n", "lacks the column"),
        (b"image_url,pr\xffompt\na.png,x\n", r"line 1 \(the header\) is not UTF-8"),
        (b'image_url,prompt\na.png,"never closed\nb.png,x\n', "quoted field that starts on line 2 is never closed"),
    ],
)
def test_files_that_are_not_usable_csv_fail_before_any_row(folder: Path, data: bytes, message: str) -> None:
    """Each unusable file is one InputError naming the file and what is wrong."""
    path = _file(folder, data)
    with pytest.raises(InputError, match=message) as info:
        plan(path, rows_per_shard=10)
    assert str(path) in str(info.value)


def test_rows_of_every_bad_kind_fail_alone(folder: Path) -> None:
    """NUL bytes, control characters, latin-1 bytes, extra and missing cells each fail their own row."""
    data = (
        HEADER.encode()
        + b"nul,a.png,bad\x00prompt\n"
        + b"bell,a.png,ring\x07\n"
        + b"latin,a.png,caf\xe9\n"
        + b"extra,a.png,hi,surplus\n"
        + b"missing,a.png\n"
        + b'formula,a.png,"=HYPERLINK(""http://x"",""click"")"\n'
        + b"ok,a.png,Fine\r\n"
    )
    result = read_rows(_file(folder, data))
    _assert_accounted(result)
    problems = {bad.cells.get("id", bad.index): (bad.field, bad.reason) for bad in result.invalid}
    assert problems["nul"] == ("prompt", "contains the control character U+0000 at character 3")
    assert problems["bell"][0] == "prompt"
    assert problems["latin"] == ("prompt", "is not UTF-8 text (byte 0xe9 at character 3)")
    assert "1 more cell(s)" in problems["extra"][1]
    assert problems["missing"][0] == "prompt"
    assert [row.id for row in result.rows] == ["formula", "ok"], "a formula is text: the row is sent as written"
    assert result.rows[0].prompt.startswith("=HYPERLINK")


def test_a_million_blank_lines_are_no_rows(folder: Path) -> None:
    """Blank lines ask for nothing: a million of them between two rows leave two rows."""
    path = _file(folder, HEADER + "one,a.png,First\n" + "\n" * 1_000_000 + ",,\n" + "two,a.png,Second\n")
    result = read_rows(path)
    assert [(row.id, row.line) for row in result.rows] == [("one", 2), ("two", 1_000_004)]


def test_a_stray_quote_inside_a_field_is_literal_and_lines_stay_right(folder: Path) -> None:
    """A quote inside an unquoted field is text, as the csv module reads it; later rows keep their lines."""
    path = _file(folder, HEADER + 'a,a.png,He said "hi\nb,a.png,Then left\nc,a.png,Done "too"\n')
    result = read_rows(path)
    assert [(row.id, row.line, row.prompt) for row in result.rows] == [
        ("a", 2, 'He said "hi'),
        ("b", 3, "Then left"),
        ("c", 4, 'Done "too"'),
    ]


def test_too_many_rows_is_a_file_error_before_reading_on(folder: Path) -> None:
    """More rows than the run allows stops at planning, naming the limit and its setting."""
    path = _file(folder, HEADER + "".join(f"r{i},a.png,Row {i}\n" for i in range(11)))
    with pytest.raises(InputError, match=r"more than 10 rows .*--max-rows"):
        plan(path, rows_per_shard=4, limits=Limits(max_rows=10))
    assert plan(path, rows_per_shard=4, limits=Limits(max_rows=11)).total_rows == 11


def test_image_rules_schemes_folders_and_sizes(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """http, file:// and other schemes, paths outside the image root and oversized images fail their row."""
    outside = tmp_path_factory.mktemp("elsewhere")
    Image.new("RGB", (8, 8)).save(outside / "o.png")
    Image.new("RGB", (600, 600)).save(folder / "big.png")
    (folder / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "sub" / "in.png")
    data = (
        "id,image_url,prompt\n"
        "http,http://example.com/a.png,x\n"
        "file,file:///etc/passwd,x\n"
        "gopher,gopher://example.com/a,x\n"
        f"outside,{outside / 'o.png'},x\n"
        "up,../../../../etc/hostname,x\n"
        "big,big.png,x\n"
        "spaces,https://example.com/a b.png,x\n"
        "sub,sub/in.png,x\n"
        "https,https://example.com/a.png,x\n"
    )
    path = _file(folder, data)
    result = read_rows(path, limits=Limits(max_image_bytes=1000))
    _assert_accounted(result)
    reasons = {bad.cells["id"]: bad.reason for bad in result.invalid}
    assert all(bad.field == "image_url" for bad in result.invalid)
    assert "--allow-http-images" in reasons["http"]
    assert "file:// URLs are not accepted" in reasons["file"]
    assert "gopher://" in reasons["gopher"]
    assert "outside" in reasons["outside"]
    assert "--image-root" in reasons["outside"]
    assert "outside" in reasons["up"]
    assert "--max-image-mb" in reasons["big"]
    assert "spaces" in reasons["spaces"]
    assert [row.id for row in result.rows] == ["sub", "https"]
    allowed = read_rows(path, limits=Limits(allow_http_images=True, image_root=str(outside.parent)))
    assert {"http", "outside", "big"} <= {row.id for row in allowed.rows}


def test_unsafe_ids_become_safe_distinct_names_and_the_manifest_keeps_them(folder: Path) -> None:
    """Traversal, absolute, control-character and overlong ids name safe files; colliding names are told apart."""
    from i2v.inputs.safe_names import output_name

    crafted = output_name("a/b")  # a plain id that equals another id's cleaned name
    ids = ["../../etc/passwd", "/abs/path", "tab\there", "x" * 300, "CON", "a/b", crafted, "plain-id_1.v2"]
    text = "id,image_url,prompt\n" + "".join(f'"{row_id}",a.png,Prompt {n}\n' for n, row_id in enumerate(ids))
    result = read_rows(_file(folder, text))
    assert not result.invalid
    assert [row.id for row in result.rows] == ids, "the manifest keeps every id as written"
    names = [row.name for row in result.rows]
    assert len(set(names)) == len(names)
    assert names[-1] == "plain-id_1.v2"
    for name in names:
        assert ".." not in name
        assert name[0].isalnum()
        assert len(name) <= 128
        assert all(ch.isalnum() or ch in "._-" for ch in name)
    assert read_rows(_file(folder, text, "again.csv")).rows[5].name == names[5], "the same every time"


# --- generated files -------------------------------------------------------------------

_CELL_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(',"\r\n \t=+-@\x00\x07\ufeff')),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    max_size=30,
)
_CELLS = st.one_of(_CELL_TEXT, st.sampled_from(["a.png", "https://example.com/x.png", "../a.png", "x" * 900]))
_ROWS = st.lists(st.lists(_CELLS, min_size=0, max_size=5), max_size=12)


def _written(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "image_url", "prompt"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_ROWS, rows_per_shard=st.integers(1, 5))
def test_any_well_formed_csv_gives_every_record_once_sharded_or_not(
    folder: Path, rows: list[list[str]], rows_per_shard: int
) -> None:
    """A file csv.writer made is never a file error; every non-blank record is one row, whatever the sharding."""
    path = _file(folder, _written(rows), "written.csv")
    whole = read_rows(path)
    _assert_accounted(whole)
    expected = sum(1 for row in rows if any(cell.strip() for cell in row))
    assert whole.total == expected
    planned = plan(path, rows_per_shard=rows_per_shard)
    parts = [read_shard(planned, shard) for shard in planned.shards]
    assert [row.key for part in parts for row in part.rows] == [row.key for row in whole.rows]
    assert [bad.index for part in parts for bad in part.invalid] == [bad.index for bad in whole.invalid]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_ROWS, line_end=st.sampled_from(["\r\n", "\n"]))
def test_any_well_formed_csv_reads_as_the_csv_module_parses_it(
    folder: Path, rows: list[list[str]], line_end: str
) -> None:
    """Every record's cells are the csv module's, whether its row took the plain-line path or not."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerow(["id", "image_url", "prompt"])
    writer.writerows(rows)
    data = out.getvalue()
    parsed = list(csv.reader(io.StringIO(data, newline="")))[1:]
    expected = [
        dict(zip(("id", "image_url", "prompt"), cells, strict=False))
        for cells in parsed
        if any(c.strip() for c in cells)
    ]
    records = list(all_records(_file(folder, data.encode("utf-8", "surrogatepass"), "parsed.csv")))
    assert [record.cells for record in records] == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=_ROWS,
    damage=st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=4)), max_size=4),
    cut=st.integers(0, 10_000),
)
def test_any_damaged_file_is_a_file_error_or_every_row_accounted_for(
    folder: Path, rows: list[list[str]], damage: list[tuple[int, bytes]], cut: int
) -> None:
    """Random bytes spliced in and a truncated end: never a traceback, never a lost or doubled row."""
    data = bytearray(_written(rows))
    for at, junk in damage:
        at %= len(data) + 1
        data[at:at] = junk
    data = data[: max(1, len(data) - cut % 64)]
    result = _outcome(_file(folder, bytes(data), "damaged.csv"), Limits(max_image_bytes=4096))
    if isinstance(result, InputError):
        assert "damaged.csv" in str(result)
        return
    _assert_accounted(result)


def test_a_hostile_file_runs_end_to_end_with_every_row_in_the_manifest(folder: Path) -> None:
    """`i2v run` on a file with formulas, a 1 MB prompt, NUL and traversal ids: no traceback, valid rows done."""
    from tests.emulated import emulator
    from tests.runs import cli_env, run

    rows = [
        '"=HYPERLINK(""http://x"",""click"")",a.png,Formula as id\n',
        f"huge,a.png,{'p' * MIB}\n",
        "nul,a.png,Zero\x00byte\n",
        "../../outside,a.png,Climbing out\n",
        "/etc/cron.d/x,a.png,Absolute\n",
        "fine,a.png,@SUM(1+1) as a prompt\n",
    ]
    csv_path = _file(folder, HEADER + "".join(rows))
    dest, log = folder / "dest" / "out", folder / "run.log"
    with emulator(generation_seconds=0.2) as emu:
        env = cli_env(emu.base_url, emu.api_key, folder / "prefect")
        assert run(["run", str(csv_path), "--dest", str(dest), "--poll-interval", "0.2"], env, log) == 1
    output = log.read_text(errors="replace")
    assert "Traceback" not in output
    manifest = pd.read_parquet(next((dest / "runs").iterdir()) / "manifest.parquet")
    assert len(manifest) == len(rows)
    by_id = manifest.set_index("id")
    assert by_id.loc["huge", "error_kind"] == "invalid_input"
    assert "field 'prompt'" in str(by_id.loc["huge", "error_message"])
    assert by_id.loc["nul", "error_kind"] == "invalid_input"
    completed = manifest[manifest["status"] == "completed"]
    assert set(completed["id"]) == {'=HYPERLINK("http://x","click")', "../../outside", "/etc/cron.d/x", "fine"}
    stored = {path.relative_to(dest).parts[0] for path in dest.rglob("*") if path.is_file()}
    assert stored <= {
        "videos",
        "thumbs",
        "inputs",
        "journal",
        "records",
        "names",
        "runs",
        "parts",
        "manifest.parquet",
        "manifest.csv",
        "report.html",
        "metadata.jsonl",
    }, stored
    assert sorted(p.name for p in (folder / "dest").iterdir()) == ["out"], "nothing written beside the destination"
    assert not (folder / "etc").exists()
    text = (dest / "manifest.csv").read_text()
    assert "'=HYPERLINK" in text, "manifest.csv neutralises formulas"
    assert "'@SUM" in text
    assert pd.read_parquet(dest / "manifest.parquet")["id"].str.startswith("=HYPERLINK").any(), "parquet keeps them"
