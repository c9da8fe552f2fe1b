"""Transfer benchmark: a large video streamed into the S3 server, against plain boto3.

Makes (once, cached under ``out/bench``) an H.264 MP4 of about ``--megabytes`` MB, serves
it over HTTP on loopback, starts moto's standalone S3 server, and runs each side in its own
process (``bench/transfer_side.py``), sampled like the pipeline in the other benchmarks:

* ``ours``: :func:`i2v.engine.download.store_video`, what the pipeline does with every finished
  video: stream from the URL to a local copy, decode every frame, commit (upload to S3).
* ``boto3``: ``upload_fileobj`` of the same file from local disk (s3transfer's defaults).

``--bucket-mb-per-s`` puts the S3 server behind a relay that passes that many MB a second
(all connections together), a slow bucket; ``--download-mb-per-s`` does the same for the
download.

Prints throughput of each, their ratio, and each side's RSS growth (peak of its process
tree minus its RSS just before the transfer). The decode check of ``ours`` is also timed
on its own, so the cost of verification is visible. Both sides run ``--repeat`` times, in
turn, each against a fresh S3 server; the figures are each side's median run (RSS growth:
its largest), and every run is listed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.common import MB, REPO_ROOT, emit, log, ratio, rounded, run_measured, work_folder

CACHE = REPO_ROOT / "out" / "bench"
_T = TypeVar("_T")


def make_video(path: Path, megabytes: int) -> Path:
    """A 1080p H.264 video of random noise, encoded at a bitrate that makes it about ``megabytes``."""
    if path.exists() and abs(path.stat().st_size - megabytes * MB) < 0.1 * megabytes * MB:
        return path
    import av
    import numpy as np

    fps, seconds = 24, 10
    frames = fps * seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"encoding a {megabytes} MB test video (once)")
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.bit_rate = int(megabytes * MB * 8 / seconds)
        stream.options = {"preset": "ultrafast", "x264-params": "nal-hrd=cbr"}
        stream.codec_context.time_base = Fraction(1, fps)
        base = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
        for index in range(frames):
            image = np.roll(base, index * 7, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    log(f"test video: {path.stat().st_size / MB:.1f} MB")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1.0, trust_env=False)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Throttle:
    """A TCP relay on loopback passing at most ``mb_per_s`` MB a second, all its connections together.

    A slow link in front of a server: every chunk, either way, takes its turn on one shared
    timeline. Runs its own event loop in a thread of this process.
    """

    def __init__(self, target_port: int, mb_per_s: float) -> None:
        self.target_port = target_port
        self.rate = mb_per_s * MB
        self._free_at = 0.0  # when the link has sent everything handed to it so far
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> Throttle:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _shut(self) -> None:
        self._server.close()
        relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(64 * 1024):
                now = self._loop.time()
                self._free_at = max(self._free_at, now) + len(data) / self.rate
                await asyncio.sleep(self._free_at - now)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@contextmanager
def s3_server(mb_per_s: float | None = None) -> Iterator[dict[str, str]]:
    """A fresh moto S3 server on loopback with a bucket ``bench``; yields the environment for a side.

    With ``mb_per_s`` the side reaches it through a :class:`Throttle`.
    """
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/moto-api/", moto)
        with contextlib.ExitStack() as relay:
            if mb_per_s:
                port = relay.enter_context(Throttle(port, mb_per_s)).port
            yield _bucket(f"http://127.0.0.1:{port}")
    finally:
        stop(moto)


def _bucket(s3_url: str) -> dict[str, str]:
    """Make the bucket ``bench``; the environment that points a side at ``s3_url``."""
    import boto3

    boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ).create_bucket(Bucket="bench")
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }


def side(name: str, args: list[str], env: dict[str, str], folder: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.transfer_side", name, *args]
    measured, _ = run_measured(cmd, env=env, cwd=REPO_ROOT, logs=folder, name=f"transfer-{name}", timeout_s=600)
    if measured.exit_code != 0:
        raise RuntimeError(f"{name} failed: see {measured.stderr_log}")
    import json

    result = json.loads(Path(measured.stdout_log).read_text().strip().splitlines()[-1])
    growth = measured.peak_rss_bytes - int(result["rss_before"])
    return {
        "seconds": rounded(result["seconds"], 2),
        "mb_per_s": rounded(result["bytes"] / MB / result["seconds"], 1),
        "rss_growth_mb": rounded(growth / MB, 1),
        "peak_rss_mb": rounded(measured.peak_rss_bytes / MB, 1),
        "cpu_s": rounded(measured.cpu_s, 2),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A side's median run by time (its largest RSS growth), with every run listed."""
    middle = sorted(runs, key=lambda run: run["seconds"])[(len(runs) - 1) // 2]
    return {**middle, "rss_growth_mb": max(run["rss_growth_mb"] for run in runs), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200, help="size of the test video (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a 30 MB video instead")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default: %(default)s)")
    parser.add_argument("--bucket-mb-per-s", type=float, help="a slow bucket: S3 behind a relay passing this many MB/s")
    parser.add_argument("--download-mb-per-s", type=float, help="a slow download: the video URL behind such a relay")
    parser.add_argument("--out", type=Path, help="also write the figures to this file")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    megabytes = 30 if args.quick else args.megabytes
    video = make_video(CACHE / f"transfer-{megabytes}mb.mp4", megabytes)

    from i2v.media.probe import probe

    started = time.perf_counter()
    info = probe(video, thumbnail=False)
    decode_s = time.perf_counter() - started

    with work_folder(args.work_dir, "i2v-bench-transfer-", keep=args.keep) as folder:
        http_port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(http_port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(video.parent),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{http_port}/", server)
            with contextlib.ExitStack() as relay:
                if args.download_mb_per_s:
                    http_port = relay.enter_context(Throttle(http_port, args.download_mb_per_s)).port
                url = f"http://127.0.0.1:{http_port}/{video.name}"
                plain_runs: list[dict[str, Any]] = []
                ours_runs: list[dict[str, Any]] = []
                for _ in range(max(1, args.repeat)):
                    # Each run gets an S3 server of its own: moto keeps objects in memory, and
                    # completing an upload costs more the more it already holds.
                    with s3_server(args.bucket_mb_per_s) as env:
                        plain_runs.append(side("boto3", [str(video), "bench", "plain.mp4"], env, folder))
                    with s3_server(args.bucket_mb_per_s) as env:
                        ours_runs.append(side("ours", [url, "bench", "ours"], env, folder))
        finally:
            stop(server)
    plain, ours = summary(plain_runs), summary(ours_runs)

    result = {
        "bench": "transfer",
        "video_mb": rounded(video.stat().st_size / MB, 1),
        "bucket_mb_per_s": args.bucket_mb_per_s,
        "download_mb_per_s": args.download_mb_per_s,
        "video": {"frames": info.frames, "width": info.width, "height": info.height, "decode_s": rounded(decode_s, 2)},
        "boto3_upload_fileobj": plain,
        "store_video": ours,
        "throughput_ratio": ratio(plain["seconds"], ours["seconds"]),
        "throughput_ratio_per_run": [
            ratio(theirs["seconds"], mine["seconds"]) for theirs, mine in zip(plain_runs, ours_runs, strict=True)
        ],
        "store_video_rss_growth_mb": ours["rss_growth_mb"],
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
