"""Copying finished videos into destinations, verified by decoding."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from i2v.errors import DownloadError, InvalidVideo
from i2v.jobs import Finished, submit, wait_for_video
from i2v.journal import Journal, Submission
from i2v.media import probe
from i2v.retry import Backoff
from i2v.rows import read_rows
from i2v.storage import LocalDestination, S3Destination
from i2v.transfer import store_video
from tests.emulated import Emulator, emulator


@pytest.fixture(scope="module")
def finished_video(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Finished]]:
    """One generation completed on an emulator that stays up for this module."""
    folder = tmp_path_factory.mktemp("video")
    Image.new("RGB", (96, 54), (200, 120, 40)).save(folder / "img.png")
    (folder / "rows.csv").write_text(
        "image_url,prompt,duration,resolution,aspect_ratio\nimg.png,Dunes shift,10,480p,9:16\n"
    )
    (row,) = read_rows(folder / "rows.csv").rows
    with emulator() as emu:
        api = emu.api()
        submission = submit(api, row, Journal(LocalDestination(folder / "dest")), backoff=Backoff(initial_s=0.05))
        yield emu, wait_for_video(api, submission, deadline=time.time() + 30, interval_s=0.1)


def test_store_to_local_folder(finished_video: tuple[Emulator, Finished], tmp_path: Path) -> None:
    """The video lands under videos/<id>.mp4 with a thumbnail, decodes, and has the requested duration and shape."""
    _emu, finished = finished_video
    dest = LocalDestination(tmp_path)
    stored = store_video(httpx.Client(), finished, dest, row_id="dunes")
    assert stored.video_uri == str(tmp_path / "videos" / "dunes.mp4")
    info = probe(Path(stored.video_uri))
    assert info.codec == "h264"
    assert info.duration_s == pytest.approx(10, abs=0.01)
    assert info.height > info.width, "9:16 is portrait"
    assert (stored.info.width, stored.info.height, stored.info.frames) == (info.width, info.height, info.frames)
    assert (tmp_path / "thumbs" / "dunes.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert [p.name for p in (tmp_path / "videos").iterdir()] == ["dunes.mp4"], "no partial files left"


def test_store_to_s3(finished_video: tuple[Emulator, Finished], s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """The same video streams into S3 and decodes after download with the requested duration."""
    _, finished = finished_video
    dest = S3Destination(s3_client, bucket, "set")
    stored = store_video(httpx.Client(), finished, dest, row_id="dunes")
    assert stored.video_uri == f"s3://{bucket}/set/videos/dunes.mp4"
    local = tmp_path / "back.mp4"
    local.write_bytes(s3_client.get_object(Bucket=bucket, Key="set/videos/dunes.mp4")["Body"].read())
    assert probe(local).duration_s == pytest.approx(10, abs=0.01)
    assert len(local.read_bytes()) == stored.video_bytes
    sizes = dest.list_sizes("thumbs/")
    assert list(sizes) == ["thumbs/dunes.jpg"]
    assert sizes["thumbs/dunes.jpg"] > 0


def test_undecodable_bytes_are_never_stored(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """An HTML page served as the video fails decoding; neither destination keeps anything."""
    page = b"<html>not a video</html>" * 100
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=page)))
    finished = Finished(
        Submission("k", "alibaba/wan2.5-i2v-preview", "universal", "g", 0.0, 1), "https://cdn.test/v.mp4", 1.0, 1, None
    )
    for dest in (LocalDestination(tmp_path), S3Destination(s3_client, bucket, "")):
        with pytest.raises(InvalidVideo):
            store_video(http, finished, dest, row_id="bad")
        assert dest.list_sizes("") == {}


def test_truncated_download_is_never_stored(finished_video: tuple[Emulator, Finished], tmp_path: Path) -> None:
    """A body shorter than its Content-Length is a download error, not a video."""
    _, finished = finished_video
    real = httpx.get(finished.video_url).content

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=real[: len(real) // 2], headers={"Content-Length": str(len(real))})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(DownloadError):
        store_video(http, finished, LocalDestination(tmp_path), row_id="cut")
    assert not (tmp_path / "videos" / "cut.mp4").exists()


def test_expired_url_is_a_download_error(tmp_path: Path) -> None:
    """Once the emulator's URL expires the download answers 403 and the row cannot be stored."""
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "img.png")
    (tmp_path / "rows.csv").write_text("image_url,prompt,duration\nimg.png,Night,5\n")
    (row,) = read_rows(tmp_path / "rows.csv").rows
    with emulator(url_ttl_seconds=0.2) as emu:
        api = emu.api()
        submission = submit(api, row, Journal(LocalDestination(tmp_path / "j")), backoff=Backoff(initial_s=0.05))
        finished = wait_for_video(api, submission, deadline=time.time() + 30, interval_s=0.1)
        time.sleep(0.5)
        with pytest.raises(DownloadError) as info:
            store_video(httpx.Client(), finished, LocalDestination(tmp_path / "out"), row_id="late")
    assert info.value.status == 403
