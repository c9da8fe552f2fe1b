"""Copying finished videos into destinations, verified by decoding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from i2v.api.downloads import DownloadRules
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.download import store_video
from i2v.engine.jobs import job_class, submit, wait_for_video
from i2v.engine.journal import Journal
from i2v.engine.offload import Offload
from i2v.engine.pacing import PollPacer
from i2v.errors import DownloadError, InvalidVideo
from i2v.inputs.validation import read_rows
from i2v.media.probe import probe
from i2v.storage.local import LocalDestination
from i2v.storage.s3 import S3Destination
from tests.emulated import Emulator, emulator

pytestmark = pytest.mark.anyio
#: The emulator serves its videos over http on loopback, as the API's own rules allow.
LOOPBACK = DownloadRules(allow_loopback_http=True)


async def _generate(emu: Emulator, folder: Path, csv_text: str) -> str:
    """Run one row on the emulator and return its video URL."""
    (folder / "rows.csv").write_text(csv_text)
    (row,) = read_rows(folder / "rows.csv").rows
    api = emu.api()
    offload = Offload(2)
    try:
        journal = Journal(LocalDestination(folder / "journal"), offload)
        submission = await submit(api, row, journal, AdmissionLimiter(1))
        finished = await wait_for_video(api, submission, PollPacer(0.1), job=job_class(row), deadline=time.time() + 30)
        return finished.video_url
    finally:
        offload.close()


@pytest.fixture(scope="module")
def video_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One 10-second portrait video, completed on an emulator that stays up for this module."""
    folder = tmp_path_factory.mktemp("video")
    Image.new("RGB", (96, 54), (200, 120, 40)).save(folder / "img.png")
    text = "image_url,prompt,duration,resolution,aspect_ratio\nimg.png,Dunes shift,10,480p,9:16\n"
    with emulator() as emu:
        yield asyncio.run(_generate(emu, folder, text))


@pytest.fixture
def offload() -> Iterator[Offload]:
    pool = Offload(2)
    yield pool
    pool.close()


async def test_store_to_local_folder(video_url: str, tmp_path: Path, offload: Offload) -> None:
    """The video lands under videos/<name>.mp4 with a thumbnail, decodes, and has the requested duration and shape."""
    dest = LocalDestination(tmp_path)
    async with httpx.AsyncClient() as http:
        stored = await store_video(http, video_url, dest, name="dunes", offload=offload, rules=LOOPBACK)
    assert (stored.video_uri, stored.thumbnail_uri) == ("videos/dunes.mp4", "thumbs/dunes.jpg"), "relative to the root"
    info = probe(tmp_path / stored.video_uri)
    assert info.codec == "h264"
    assert info.duration_s == pytest.approx(10, abs=0.01)
    assert info.height > info.width, "9:16 is portrait"
    assert (stored.info.width, stored.info.height, stored.info.frames) == (info.width, info.height, info.frames)
    assert (tmp_path / "thumbs" / "dunes.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert [p.name for p in (tmp_path / "videos").iterdir()] == ["dunes.mp4"], "no partial files left"


async def test_store_to_s3(video_url: str, s3_client: Any, bucket: str, tmp_path: Path, offload: Offload) -> None:
    """The same video streams into S3 and decodes after download with the requested duration."""
    dest = S3Destination(s3_client, bucket, "set")
    async with httpx.AsyncClient() as http:
        stored = await store_video(http, video_url, dest, name="dunes", offload=offload, rules=LOOPBACK)
    assert stored.video_uri == "videos/dunes.mp4"
    assert dest.uri_for(stored.video_uri) == f"s3://{bucket}/set/videos/dunes.mp4"
    local = tmp_path / "back.mp4"
    local.write_bytes(s3_client.get_object(Bucket=bucket, Key="set/videos/dunes.mp4")["Body"].read())
    assert probe(local).duration_s == pytest.approx(10, abs=0.01)
    assert len(local.read_bytes()) == stored.video_bytes
    assert dest.size("videos/dunes.mp4") == stored.video_bytes
    sizes = dest.list_sizes("thumbs/")
    assert list(sizes) == ["thumbs/dunes.jpg"]
    assert sizes["thumbs/dunes.jpg"] > 0


async def test_undecodable_bytes_are_never_stored(
    s3_client: Any, bucket: str, tmp_path: Path, offload: Offload
) -> None:
    """An HTML page served as the video fails decoding; neither destination keeps anything."""
    page = b"<html>not a video</html>" * 100
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=page))
    async with httpx.AsyncClient(transport=transport) as http:
        for dest in (LocalDestination(tmp_path), S3Destination(s3_client, bucket, "")):
            with pytest.raises(InvalidVideo):
                await store_video(http, "https://cdn.test/v.mp4", dest, name="bad", offload=offload)
            assert dest.list_sizes("") == {}


async def test_truncated_download_is_never_stored(video_url: str, tmp_path: Path, offload: Offload) -> None:
    """A body shorter than its Content-Length is a download error, not a video."""
    real = httpx.get(video_url).content

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=real[: len(real) // 2], headers={"Content-Length": str(len(real))})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(DownloadError):
            await store_video(http, video_url, LocalDestination(tmp_path), name="cut", offload=offload, rules=LOOPBACK)
    assert not (tmp_path / "videos" / "cut.mp4").exists()


async def test_expired_url_is_a_download_error(tmp_path: Path, offload: Offload) -> None:
    """Once the emulator's URL expires the download answers 403 and the row cannot be stored."""
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "img.png")
    with emulator(url_ttl_seconds=0.2) as emu:
        url = await _generate(emu, tmp_path, "image_url,prompt,duration\nimg.png,Night,5\n")
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as http:
            with pytest.raises(DownloadError) as info:
                await store_video(
                    http, url, LocalDestination(tmp_path / "out"), name="late", offload=offload, rules=LOOPBACK
                )
    assert info.value.status == 403
