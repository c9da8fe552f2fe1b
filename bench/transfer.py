"""Transfer benchmark: a large video streamed into the S3 server, against plain boto3.

Makes (once, cached under ``out/bench``) an H.264 MP4 of about ``--megabytes`` MB, serves
it over HTTP on loopback, starts moto's standalone S3 server, and runs each side in its own
process (``bench/transfer_side.py``), sampled like the pipeline in the other benchmarks:

* ``ours``: :func:`i2v.engine.download.store_video`, what the pipeline does with every finished
  video: stream from the URL into a multipart upload, spool, decode every frame, commit.
* ``boto3``: ``upload_fileobj`` of the same file from local disk (s3transfer's defaults).

Prints throughput of each, their ratio, and each side's RSS growth (peak of its process
tree minus its RSS just before the transfer). The decode check of ``ours`` is also timed
on its own, so the cost of verification is visible. Both sides run ``--repeat`` times, in
turn, each against a fresh S3 server; the figures are each side's median run (RSS growth:
its largest), and every run is listed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

from bench.common import MB, REPO_ROOT, emit, log, ratio, rounded, run_measured, work_folder

CACHE = REPO_ROOT / "out" / "bench"


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


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """A fresh moto S3 server on loopback with a bucket ``bench``; yields the environment for a side."""
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        s3_url = f"http://127.0.0.1:{port}"
        wait_for(f"{s3_url}/moto-api/", moto)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket="bench")
        yield {
            **os.environ,
            "AWS_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
    finally:
        stop(moto)


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
            url = f"http://127.0.0.1:{http_port}/{video.name}"
            plain_runs: list[dict[str, Any]] = []
            ours_runs: list[dict[str, Any]] = []
            for _ in range(max(1, args.repeat)):
                # Each run gets an S3 server of its own: moto keeps objects in memory, and
                # completing an upload costs more the more it already holds.
                with s3_server() as env:
                    plain_runs.append(side("boto3", [str(video), "bench", "plain.mp4"], env, folder))
                with s3_server() as env:
                    ours_runs.append(side("ours", [url, "bench", "ours"], env, folder))
        finally:
            stop(server)
    plain, ours = summary(plain_runs), summary(ours_runs)

    result = {
        "bench": "transfer",
        "video_mb": rounded(video.stat().st_size / MB, 1),
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
