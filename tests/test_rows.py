"""Reading and validating CSV rows."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from i2v.errors import InputError
from i2v.inputs.row import shorten_image_ref
from i2v.inputs.validation import read_rows


def _png(path: Path, color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    Image.new("RGB", (32, 18), color).save(path)
    return path


def _csv(folder: Path, text: str) -> Path:
    path = folder / "rows.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", (10, 200, 10))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_valid_rows_get_model_defaults_and_canonical_values(folder: Path) -> None:
    """Blank cells take the model's defaults; enum case is normalised to the model's spelling."""
    path = _csv(folder, "image_url,prompt,resolution,enhance_prompt\na.png,A red square,720P,no\n")
    (row,) = read_rows(path).rows
    assert row.params == {
        "aspect_ratio": "16:9",
        "duration": 10,
        "enhance_prompt": False,
        "resolution": "720p",
    }
    assert row.model == "alibaba/wan2.5-i2v-preview"
    assert row.id == row.key
    assert len(row.key) == 20


def test_invalid_rows_name_row_and_field_and_the_rest_carry_on(folder: Path) -> None:
    """Each bad row is reported with its index, CSV line and field; good rows, and odd ids made safe, come out."""
    path = _csv(
        folder,
        "id,image_url,prompt,duration,model\n"
        "ok,a.png,Fine,5,\n"
        "bad-duration,a.png,Too long,12,\n"
        "no-prompt,a.png,,5,\n"
        "no-image,missing.png,Where is it,5,\n"
        "not-image,notes.txt,Text file,5,\n"
        "bad-model,a.png,Which model,5,acme/nope\n"
        "bad id!,a.png,Weird id,5,\n"
        "ftp,ftp://host/x.png,Scheme,5,\n",
    )
    result = read_rows(path)
    assert [row.id for row in result.rows] == ["ok", "bad id!"]
    assert result.rows[1].name.startswith("bad_id-"), "an unsafe id is made a safe name, not a failure"
    problems = {bad.index: (bad.field, bad.message) for bad in result.invalid}
    assert problems[1][0] == "duration"
    assert "must be one of 5, 10, got 12" in problems[1][1]
    assert problems[1][1].startswith("row 1 (CSV line 3), field 'duration'")
    assert problems[2][0] == "prompt"
    assert problems[3][0] == "image_url"
    assert "not found" in problems[3][1]
    assert problems[4][0] == "image_url"
    assert "not a PNG, JPEG, GIF or WebP" in problems[4][1]
    assert problems[5][0] == "model"
    assert "unknown model 'acme/nope'" in problems[5][1]
    assert 6 not in problems
    assert problems[7][0] == "image_url"
    assert "ftp://" in problems[7][1]
    assert result.total == 8


def test_parameter_the_model_lacks_is_rejected(folder: Path) -> None:
    """aspect_ratio is not a wan2.2 parameter: the row fails, naming the field and what is supported."""
    path = _csv(folder, "image_url,prompt,model,aspect_ratio\na.png,Hi,alibaba/wan2.2-i2v-plus,16:9\n")
    (bad,) = read_rows(path).invalid
    assert bad.field == "aspect_ratio"
    assert "not a parameter of alibaba/wan2.2-i2v-plus" in bad.reason
    assert "resolution" in bad.reason


def test_run_defaults_apply_under_row_cells(folder: Path) -> None:
    """Run defaults fill blank cells; a row's own cell wins."""
    path = _csv(folder, "image_url,prompt,duration\na.png,One,\nb.png,Two,10\n")
    rows = read_rows(path, defaults={"duration": 5, "resolution": "480p"}).rows
    assert [(r.params["duration"], r.params["resolution"]) for r in rows] == [(5, "480p"), (10, "480p")]


def test_invalid_run_default_is_reported_per_row(folder: Path) -> None:
    """A run default the model rejects names itself as the run default."""
    path = _csv(folder, "image_url,prompt\na.png,One\n")
    (bad,) = read_rows(path, defaults={"duration": 7}).invalid
    assert bad.field == "duration (run default)"


def test_row_key_is_stable_and_tracks_the_work(folder: Path) -> None:
    """Same work gives the same key in any file; prompt, params or image content change it."""
    first = read_rows(_csv(folder, "image_url,prompt\na.png,Hello\n")).rows[0].key
    again = read_rows(_csv(folder, "image_url,prompt,duration,id\na.png,Hello,10,named\n")).rows[0].key
    other_prompt = read_rows(_csv(folder, "image_url,prompt\na.png,Hello!\n")).rows[0].key
    other_duration = read_rows(_csv(folder, "image_url,prompt,duration\na.png,Hello,5\n")).rows[0].key
    _png(folder / "a.png", (0, 0, 255))
    other_pixels = read_rows(_csv(folder, "image_url,prompt\na.png,Hello\n")).rows[0].key
    assert first == again
    assert len({first, other_prompt, other_duration, other_pixels}) == 4


def test_identical_work_shares_a_key(folder: Path) -> None:
    """Rows asking for the same work carry the same key (the engine then does it once)."""
    path = _csv(folder, "image_url,prompt\na.png,Same\nb.png,Other\na.png,Same\n")
    first, other, again = read_rows(path).rows
    assert first.key == again.key != other.key
    assert (first.index, again.index) == (0, 2)


def test_reused_id_for_different_work_is_invalid(folder: Path) -> None:
    """An id names one output: reusing it for other work would overwrite a video."""
    path = _csv(folder, "id,image_url,prompt\nx,a.png,One\nx,b.png,Two\n")
    result = read_rows(path)
    assert [r.index for r in result.rows] == [0]
    assert result.invalid[0].field == "id"
    assert "already used by row 0" in result.invalid[0].reason


def test_local_images_become_data_uris_and_urls_pass_through(folder: Path) -> None:
    """Local paths are sent as base64 data URIs; https URLs and data URIs as written."""
    data_uri = "data:image/png;base64," + base64.b64encode((folder / "b.png").read_bytes()).decode()
    path = _csv(folder, f'image_url,prompt\na.png,Local\nhttps://example.com/x.jpg,Remote\n"{data_uri}",Inline\n')
    local, remote, inline = read_rows(path).rows
    body = local.request_body()
    assert body["image_url"].startswith("data:image/png;base64,")
    decoded = base64.b64decode(body["image_url"].split(",", 1)[1])
    assert Image.open(io.BytesIO(decoded)).size == (32, 18)
    assert remote.request_body()["image_url"] == "https://example.com/x.jpg"
    assert inline.request_body()["image_url"] == data_uri
    assert shorten_image_ref(data_uri).startswith("data:image/png;base64,…(")


def test_bad_data_uri_is_invalid(folder: Path) -> None:
    """A data URI with broken base64 is caught before anything is sent."""
    path = _csv(folder, 'image_url,prompt\n"data:image/png;base64,@@@",Broken\n')
    assert read_rows(path).invalid[0].field == "image_url"


def test_unusable_files_raise_one_clear_error(folder: Path) -> None:
    """A missing file, a missing column or an unknown model stop the run with one message."""
    with pytest.raises(InputError, match="input file not found"):
        read_rows(folder / "nope.csv")
    with pytest.raises(InputError, match="lacks the column"):
        read_rows(_csv(folder, "image,prompt\na.png,x\n"))
    latin = folder / "latin.csv"
    latin.write_bytes("image_url,prompt,caf\xe9\na.png,x,\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"line 1 \(the header\) is not UTF-8"):
        read_rows(latin)
    with pytest.raises(InputError, match="unknown model"):
        read_rows(_csv(folder, "image_url,prompt\na.png,x\n"), model="acme/nope")


def test_a_row_that_is_not_utf8_fails_alone(folder: Path) -> None:
    """Latin-1 bytes in one prompt fail that row, naming the field; the next row proceeds."""
    latin = folder / "latin.csv"
    latin.write_bytes("image_url,prompt\na.png,caf\xe9\nb.png,fine\n".encode("latin-1"))
    result = read_rows(latin)
    (bad,) = result.invalid
    assert (bad.index, bad.line, bad.field) == (0, 2, "prompt")
    assert "not UTF-8 text (byte 0xe9" in bad.reason
    assert [row.prompt for row in result.rows] == ["fine"]


def test_excel_bom_ragged_rows_and_unknown_columns(folder: Path) -> None:
    """A BOM is tolerated, extra cells fail their row, unknown columns are reported as ignored."""
    path = folder / "excel.csv"
    path.write_text("\ufeffimage_url,prompt,category\na.png,One,cats\na.png,Two,dogs,extra\n", encoding="utf-8")
    result = read_rows(path)
    assert [r.prompt for r in result.rows] == ["One"]
    assert "more cell" in result.invalid[0].reason
    assert result.ignored_columns == ["category"]


def test_prompt_length_limit(folder: Path) -> None:
    """Prompts are limited to 800 characters."""
    path = _csv(folder, f"image_url,prompt\na.png,{'x' * 801}\n")
    (bad,) = read_rows(path).invalid
    assert bad.field == "prompt"
    assert "801 characters" in bad.reason


def test_legacy_route_uses_its_own_field_names(folder: Path) -> None:
    """On the legacy path prompt expansion is spelt enable_prompt_expansion."""
    path = _csv(folder, "image_url,prompt,enhance_prompt\na.png,One,false\n")
    (row,) = read_rows(path, route="legacy").rows
    assert row.params["enable_prompt_expansion"] is False
    assert "enhance_prompt" not in row.params
    assert row.route == "legacy"
