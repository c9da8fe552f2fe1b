"""Parts every benchmark shares: the emulator process, process-tree sampling, inputs, running the pipeline.

Nothing here imports the engine (``i2v``, ``flows``, ``tasks``): the benchmarks drive it only through
its command line, so they keep working while the engine is rewritten, and they measure what a user
would run.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import json
import math
import os
import queue
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The emulator and every client share this key; it is not a secret.
API_KEY = "bench-key-not-secret"
MODEL = "alibaba/wan2.5-i2v-preview"
#: Valid for MODEL on both of its routes; rows cycle through them.
DURATIONS = (5, 10)
RESOLUTIONS = ("480p", "720p", "1080p")
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (200, 40, 40)),
    ("green", (40, 170, 70)),
    ("blue", (40, 80, 200)),
    ("amber", (230, 160, 30)),
    ("violet", (140, 60, 190)),
    ("teal", (30, 150, 150)),
)
IMAGE_SIZE = (64, 36)
SAMPLE_INTERVAL_S = 0.2
STOP_GRACE_S = 10.0
MB = 1024 * 1024

_SERVING = re.compile(r"serving on (http://\S+)")


# --- small helpers ------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress goes to stderr; stdout is kept for the one JSON line."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any], out: Path | None = None) -> None:
    """Print ``result`` as the last line of stdout (and write it to ``out`` when given)."""
    line = json.dumps(result, sort_keys=False, default=str)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        log(f"figures written to {out}")
    sys.stdout.flush()
    print(line, flush=True)


def rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or not denominator:
        return None
    return rounded(numerator / denominator, digits)


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``[bench options] -- [pipeline flags]``: the flags after ``--`` go to ``i2v run`` unchanged."""
    args = list(argv)
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1 :]
    return args, []


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop the processes we started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def work_folder(given: Path | None, prefix: str, *, keep: bool) -> Iterator[Path]:
    """A folder for inputs, outputs and logs; a temporary one is removed afterwards unless ``keep``."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            log(f"kept the work folder {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def i2v_command() -> list[str]:
    """How to call ``i2v``: ``$BENCH_I2V`` (split like a shell would), else the venv's console script."""
    override = os.environ.get("BENCH_I2V", "").strip()
    if override:
        return shlex.split(override)
    script = Path(sys.executable).with_name("i2v")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "i2v.cli.main"]


def client_env(base_url: str) -> dict[str, str]:
    """Environment of every process that talks to the emulator."""
    env = dict(os.environ)
    # Ephemeral Prefect, never a server some shell happens to point at.
    env.pop("PREFECT_API_URL", None)
    env.update(
        AIMLAPI_BASE_URL=base_url,
        AIMLAPI_API_KEY=API_KEY,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
    )
    return env


# --- inputs -------------------------------------------------------------------------------------


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small RGB PNG: the top half in ``rgb``, the bottom half darker."""
    dark = tuple(c // 2 for c in rgb)
    lines = [b"\x00" + bytes(rgb if y < height // 2 else dark) * width for y in range(height)]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(lines), 9))
        + chunk(b"IEND", b"")
    )


_MOTIONS = ("drifts left", "drifts right", "pushes in", "pulls back", "tilts up", "tilts down", "orbits slowly")


def write_inputs(folder: Path, rows: int, name: str = "input.csv") -> Path:
    """A CSV of ``rows`` distinct rows (distinct prompts: identical rows are generated once).

    Images are a handful of tiny local PNGs next to the CSV; the pipeline sends them as data
    URIs. ``duration`` and ``resolution`` cycle through values valid for the default model.
    """
    folder.mkdir(parents=True, exist_ok=True)
    images = folder / "images"
    images.mkdir(exist_ok=True)
    for colour, rgb in COLOURS:
        (images / f"{colour}.png").write_bytes(png_bytes(*IMAGE_SIZE, rgb))
    path = folder / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image_url", "prompt", "duration", "resolution"])
        for i in range(rows):
            colour = COLOURS[i % len(COLOURS)][0]
            motion = _MOTIONS[(i // len(COLOURS)) % len(_MOTIONS)]
            prompt = f"Bench row {i}: a {colour} landscape under a slow sky while the camera {motion}"
            writer.writerow(
                [
                    f"row-{i:06d}",
                    f"images/{colour}.png",
                    prompt,
                    DURATIONS[i % len(DURATIONS)],
                    RESOLUTIONS[i % len(RESOLUTIONS)],
                ]
            )
    return path


def manifest_counts(dest: Path) -> dict[str, int] | None:
    """Rows by ``status`` in ``dest/manifest.csv``, or None when the run wrote none."""
    path = dest / "manifest.csv"
    if not path.exists():
        return None
    counts: dict[str, int] = {}
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            status = row.get("status") or "?"
            counts[status] = counts.get(status, 0) + 1
    return counts


def count_videos(dest: Path) -> int:
    folder = dest / "videos"
    return sum(1 for _ in folder.glob("*.mp4")) if folder.is_dir() else 0


# --- the emulator -------------------------------------------------------------------------------


def emulator_args(
    *,
    max_concurrent: int,
    generation_seconds: float,
    generation_jitter: float = 0.0,
    max_pending: int | None = None,
    short_side: int = 16,
    fps: int = 1,
    seed: int = 0,
) -> list[str]:
    """Options of ``i2v emulator`` for a benchmark: small videos, fixed seed."""
    args = [
        "--max-concurrent",
        str(max_concurrent),
        "--generation-seconds",
        f"{generation_seconds:g}",
        "--generation-jitter",
        f"{generation_jitter:g}",
        "--short-side",
        str(short_side),
        "--fps",
        str(fps),
        "--seed",
        str(seed),
    ]
    if max_pending is not None:
        args += ["--max-pending", str(max_pending)]
    return args


class Emulator:
    """An ``i2v emulator`` process on a free loopback port, stopped by its pid whatever happens."""

    def __init__(self, args: Sequence[str], folder: Path, *, startup_timeout_s: float = 60.0) -> None:
        self.args = list(args)
        self.folder = folder
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._http = httpx.Client(timeout=30.0, trust_env=False)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        cmd = [
            *i2v_command(),
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--work-dir",
            str(self.folder / "files"),
            *self.args,
        ]
        stderr = (self.folder / "emulator.stderr.log").open("w")
        try:
            self.process = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                cwd=self.folder,
                start_new_session=True,
            )
        finally:
            stderr.close()
        found: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, args=(found,), daemon=True)
        self._reader.start()
        try:
            self.url = found.get(timeout=self.startup_timeout_s)
        except queue.Empty:
            self.stop()
            tail = _tail(self.folder / "emulator.stderr.log")
            raise RuntimeError(f"the emulator did not announce its URL: {shlex.join(cmd)}\n{tail}") from None
        if not self.url:
            self.stop()
            tail = _tail(self.folder / "emulator.stderr.log")
            raise RuntimeError(f"the emulator exited at start: {shlex.join(cmd)}\n{tail}")
        self.stats()  # it answers
        log(f"emulator pid {self.process.pid} at {self.url} ({' '.join(self.args)})")
        return self.url

    def _read_stdout(self, found: queue.Queue[str]) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        announced = False
        with (self.folder / "emulator.stdout.log").open("w") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                match = _SERVING.search(line)
                if match and not announced:
                    announced = True
                    found.put(match.group(1))
        if not announced:
            found.put("")

    def stats(self) -> dict[str, Any]:
        """The emulator's counters (``GET /_emulator/stats``)."""
        response = self._http.get(f"{self.url}/_emulator/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system) the emulator process has used so far."""
        if self.process is None:
            return None
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return None
        return float(times.user + times.system)

    def stop(self) -> None:
        self._http.close()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log(f"emulator pid {process.pid} ignored SIGTERM; killing it")
            process.kill()
            process.wait(STOP_GRACE_S)
        if self._reader is not None:
            self._reader.join(5.0)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- measuring a process tree -------------------------------------------------------------------


def _label(proc: Any) -> str:
    """A short name for a sampled process: its command line without the interpreter's path."""
    try:
        words = [Path(word).name if index == 0 else word for index, word in enumerate(proc.cmdline())]
    except (psutil.Error, AttributeError):
        return "?"
    return " ".join(words)[:80]


class TreeSampler:
    """Samples a process and all its descendants every ``interval_s`` in a background thread.

    Keeps the peak of the tree's total RSS, and each process's last CPU time (user + system),
    so children that have exited still count with what they had used at their last sample.
    """

    def __init__(self, pid: int, interval_s: float = SAMPLE_INTERVAL_S, *, history: bool = False) -> None:
        self.pid = pid
        self.interval_s = interval_s
        #: (time.time(), total RSS) of every sample, when asked for.
        self.history: list[tuple[float, int]] | None = [] if history else None
        self.peak_rss = 0
        self.rss_now = 0
        self.processes_now = 0
        self.max_processes = 0
        self.max_threads = 0
        self.samples = 0
        #: (pid, create_time) of every process seen in the tree, root included.
        self.seen: dict[int, float] = {}
        #: Each process's peak RSS and what it runs (``pid name: command line``).
        self.peak_by_process: dict[int, tuple[int, str]] = {}
        self._cpu: dict[tuple[int, float], float] = {}
        self._procs: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    @property
    def cpu_s(self) -> float:
        with self._lock:
            return sum(self._cpu.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _process(self, pid: int) -> Any:
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = psutil.Process(pid)
        return proc

    def sample(self) -> None:
        try:
            root = self._process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = threads = alive = 0
        cpu: dict[tuple[int, float], float] = {}
        each: dict[int, int] = {}
        for proc in tree:
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    memory = proc.memory_info()
                    count = proc.num_threads()
            except psutil.Error:
                continue
            cpu[key] = float(times.user + times.system)
            each[proc.pid] = int(memory.rss)
            rss += int(memory.rss)
            threads += int(count)
            alive += 1
            self._procs.setdefault(proc.pid, proc)
        with self._lock:
            self._cpu.update(cpu)
            for pid, created in cpu:
                self.seen[pid] = created
            self.rss_now = rss
            self.peak_rss = max(self.peak_rss, rss)
            for pid, now in each.items():
                peak, label = self.peak_by_process.get(pid, (0, ""))
                self.peak_by_process[pid] = (max(peak, now), label or _label(self._procs.get(pid)))
            self.processes_now = alive
            self.max_processes = max(self.max_processes, alive)
            self.max_threads = max(self.max_threads, threads)
            self.samples += 1
            if self.history is not None:
                self.history.append((time.time(), rss))

    def peaks_mb(self) -> dict[str, float]:
        """Each process's peak RSS in MB, by ``pid command``, largest first."""
        with self._lock:
            peaks = sorted(self.peak_by_process.items(), key=lambda item: -item[1][0])
        return {f"{pid} {label}": round(peak / MB, 1) for pid, (peak, label) in peaks}

    def cpu_by_process(self) -> dict[str, float]:
        """Each process's CPU seconds (user + system, as last sampled), by ``pid command``, largest first."""
        with self._lock:
            spent = sorted(self._cpu.items(), key=lambda item: -item[1])
            labels = {pid: label for pid, (_, label) in self.peak_by_process.items()}
        return {f"{pid} {labels.get(pid, '')}": round(cpu, 1) for (pid, _), cpu in spent}

    def rss_at(self, when: float) -> int | None:
        """Total RSS of the last sample taken at or before ``when`` (needs ``history``)."""
        if not self.history:
            return None
        with self._lock:
            index = bisect.bisect_right(self.history, (when, sys.maxsize)) - 1
            return self.history[max(0, index)][1]

    def descendants_alive(self) -> list[Any]:
        """Processes once seen in the tree (root excluded) that still run (same pid and start time)."""
        alive = []
        with self._lock:
            seen = dict(self.seen)
        for pid, created in seen.items():
            if pid == self.pid:
                continue
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                continue
        return alive


@dataclass
class Measured:
    """What running one command cost, and how it ended."""

    cmd: list[str]
    exit_code: int | None
    timed_out: bool
    started_at: float
    wall_s: float
    #: Sum over the tree's processes of their last sampled user+system CPU seconds.
    cpu_s: float
    #: From wait4(): the root process plus every descendant it reaped; exact, but blind to orphans.
    cpu_s_rusage: float | None
    peak_rss_bytes: int
    max_processes: int
    max_threads: int
    #: Descendants still running after the root exited (plus a grace period); they were stopped.
    leftover_processes: int
    stdout_log: str
    stderr_log: str
    #: CPU seconds of each process of the tree, by ``pid command``.
    cpu_s_by_process: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak_rss_mb"] = rounded(self.peak_rss_bytes / MB, 1)
        data["cpu_s"] = rounded(self.cpu_s, 2)
        data["cpu_s_rusage"] = rounded(self.cpu_s_rusage, 2)
        data["wall_s"] = rounded(self.wall_s, 2)
        del data["peak_rss_bytes"]
        return data


Tick = Callable[[TreeSampler], None]


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    logs: Path,
    name: str,
    timeout_s: float,
    on_tick: Tick | None = None,
    tick_s: float = 0.5,
    history: bool = False,
) -> tuple[Measured, TreeSampler]:
    """Run ``cmd`` to completion while sampling its process tree; always leaves nothing running."""
    logs.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    stdout_log, stderr_log = logs / f"{stem}.stdout.log", logs / f"{stem}.stderr.log"
    log(f"{name}: {shlex.join(cmd)}")
    with stdout_log.open("w") as out, stderr_log.open("w") as err:
        started_at, started = time.time(), time.monotonic()
        process = subprocess.Popen(
            list(cmd), stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True
        )
    sampler = TreeSampler(process.pid, history=history)
    sampler.start()
    status: int | None = None
    rusage: Any = None
    timed_out = False
    next_tick = time.monotonic()
    try:
        while True:
            pid, wait_status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                status, rusage = wait_status, usage
                break
            now = time.monotonic()
            if now - started > timeout_s:
                timed_out = True
                log(f"{name}: still running after {timeout_s:.0f}s; stopping it")
                break
            if on_tick is not None and now >= next_tick:
                next_tick = now + tick_s
                on_tick(sampler)
            time.sleep(0.05)
    finally:
        wall_s = time.monotonic() - started
        if status is None:
            status, rusage = _stop_root(process)
        sampler.stop()
        sampler.sample()  # orphans the root left behind, if any
        exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
        process.returncode = exit_code if exit_code is not None else -9
        leftovers = _stop_descendants(sampler, name)
    cpu_rusage = float(rusage.ru_utime + rusage.ru_stime) if rusage is not None else None
    measured = Measured(
        cmd=list(cmd),
        exit_code=None if timed_out else exit_code,
        timed_out=timed_out,
        started_at=started_at,
        wall_s=wall_s,
        cpu_s=sampler.cpu_s,
        cpu_s_rusage=cpu_rusage,
        peak_rss_bytes=sampler.peak_rss,
        max_processes=sampler.max_processes,
        max_threads=sampler.max_threads,
        leftover_processes=leftovers,
        stdout_log=str(stdout_log),
        stderr_log=str(stderr_log),
        cpu_s_by_process=sampler.cpu_by_process(),
    )
    log(
        f"{name}: exit {measured.exit_code} after {wall_s:.1f}s, cpu {measured.cpu_s:.1f}s, "
        f"peak rss {measured.peak_rss_bytes / MB:.0f} MB, {sampler.max_processes} processes, "
        f"{sampler.max_threads} threads at most"
    )
    if measured.exit_code not in (0, None) or timed_out:
        log(f"{name}: last lines of stderr:\n{_tail(stderr_log)}")
    return measured, sampler


def _stop_root(process: subprocess.Popen[bytes]) -> tuple[int | None, Any]:
    """SIGTERM the root by pid, SIGKILL after a grace period; returns its wait status and rusage."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            except ChildProcessError:
                return None, None
            if pid:
                return status, usage
            time.sleep(0.05)
    return None, None


def _stop_descendants(sampler: TreeSampler, name: str) -> int:
    """Give what the root started a grace period to end, then stop it by pid; returns how many needed it."""
    alive = sampler.descendants_alive()
    if not alive:
        return 0
    _, alive = psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    if not alive:
        return 0
    log(f"{name}: {len(alive)} descendant process(es) outlived it; stopping pids {[p.pid for p in alive]}")
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return len(alive)


# --- the pipeline -------------------------------------------------------------------------------


def pipeline_command(
    csv_path: Path,
    dest: Path,
    *,
    max_in_flight: int,
    poll_interval_s: float,
    job_timeout_s: float,
    extra: Sequence[str] = (),
) -> list[str]:
    return [
        *i2v_command(),
        "run",
        str(csv_path),
        "--dest",
        str(dest),
        "--max-in-flight",
        str(max_in_flight),
        "--poll-interval",
        f"{poll_interval_s:g}",
        "--job-timeout",
        f"{job_timeout_s:g}",
        *extra,
    ]


class PrefectHomes:
    """A fresh ``PREFECT_HOME`` per pipeline run, each a copy of one already-migrated database.

    Every run starts from an empty Prefect database (no history from other runs or other users
    of the machine), without paying the database migrations (~8 s here) inside the measurement,
    just as a user's second run would not.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._template: Path | None = None
        self._prepared = False

    def new(self, name: str) -> Path:
        if not self._prepared:
            self._prepared = True
            self._template = self._prepare()
        home = self.root / name
        if home.exists():
            shutil.rmtree(home)
        if self._template is not None:
            shutil.copytree(self._template, home)
        else:
            home.mkdir(parents=True)
        return home

    def _prepare(self) -> Path | None:
        prefect = Path(sys.executable).with_name("prefect")
        template = self.root / "template"
        template.mkdir(parents=True, exist_ok=True)
        if not prefect.exists():
            log("no prefect executable beside this Python; each run migrates its own database")
            return None
        env = dict(os.environ, PREFECT_HOME=str(template), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        env.pop("PREFECT_API_URL", None)
        started = time.monotonic()
        done = subprocess.run(
            [str(prefect), "server", "database", "upgrade", "-y"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            log(f"preparing a Prefect database failed; each run migrates its own:\n{done.stderr[-2000:]}")
            return None
        log(f"prepared a migrated Prefect database in {time.monotonic() - started:.1f}s")
        return template


def progress_logger(emulator: Emulator, total: int, label: str, every_s: float = 10.0) -> Tick:
    """An ``on_tick`` that logs videos downloaded and the tree's RSS every ``every_s``."""
    last = [time.monotonic()]

    def tick(sampler: TreeSampler) -> None:
        now = time.monotonic()
        if now - last[0] < every_s:
            return
        last[0] = now
        try:
            stats = emulator.stats()
        except httpx.HTTPError:
            return
        log(
            f"{label}: {stats.get('downloads_served', 0)}/{total} videos downloaded, "
            f"{stats.get('creates', 0)} creates, {stats.get('fetches', 0)} fetches, "
            f"rss {sampler.rss_now / MB:.0f} MB in {sampler.processes_now} processes"
        )

    return tick


def emulator_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The emulator's counters that every benchmark reports."""
    first, last = stats.get("first_create_at"), stats.get("last_download_at")
    served = int(stats.get("downloads_served") or 0)
    fetches = int(stats.get("fetches") or 0)
    responses = stats.get("responses") or {}
    return {
        "makespan_s": rounded(last - first, 3) if first is not None and last is not None else None,
        "first_create_at": first,
        "last_download_at": last,
        "creates": stats.get("creates"),
        "fetches": fetches,
        "downloads": stats.get("downloads"),
        "downloads_served": served,
        "polls_per_video": ratio(fetches, served, 2),
        "responses_429": int(responses.get("429", 0)),
        "responses": responses,
        "max_generating_seen": stats.get("max_generating_seen"),
        "jobs": stats.get("jobs"),
    }
