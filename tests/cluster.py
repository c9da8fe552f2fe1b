"""A Prefect server on PostgreSQL and workers as real processes on loopback (distributed test, bench/scaleout).

Everything is started the way deployments/README.md says (PostgreSQL with ``initdb`` and
``pg_ctl``, ``prefect server start`` on it, ``make deploy``, ``deployments/worker.sh`` or
``prefect worker start --pool i2v``) and stopped by process id whatever happens:
workers first, then the server (a worker whose server is gone may ignore SIGTERM),
SIGTERM then SIGKILL after a grace period, then whatever each process had started (a
worker's flow runs) that is still alive, and the database last. Nothing here imports
the engine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STOP_GRACE_S = 10.0

_SUBMITTING = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
#: Two workers may both try to take a run; the server lets one have it and tells the other.
_ABORTED = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_env(home: Path, api_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of every process of the cluster: its own PREFECT_HOME and server, no network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIMLAPI_", "I2V_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        # Workers look for work every second (default 10 s): runs start sooner.
        PREFECT_WORKER_QUERY_SECONDS="1",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(extra or {})
    return env


class Started:
    """A process we started (in its own session), its log, and how to stop it and what it started."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None) -> None:
        self.command = list(command)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            self.command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, SIGKILL after ``grace_s``; then the same for what it started that still runs."""
        stop_together([self], grace_s)


def stop_together(started: Sequence[Started], grace_s: float = STOP_GRACE_S) -> None:
    """Stop processes at once (one grace period for all), then whatever they had started."""
    descendants: list[psutil.Process] = []
    for item in started:
        with contextlib.suppress(psutil.Error):
            descendants += psutil.Process(item.pid).children(recursive=True)
        if item.alive():
            item.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for item in started:
        try:
            item.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait(timeout=grace_s)
    _stop_all(descendants, grace_s)
    for item in started:
        item._log_handle.close()


def _stop_all(processes: Sequence[psutil.Process], grace_s: float) -> None:
    alive = []
    for process in processes:
        try:
            process.terminate()
            alive.append(process)
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(alive, timeout=grace_s)
    for process in still:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(still, timeout=grace_s)


#: PostgreSQL's programs on Debian (the machine image has version 15).
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Postgres:
    """A PostgreSQL server of its own on a loopback port: ``initdb``, then ``pg_ctl start``.

    Its data lives in a folder of its own under the system's temporary folder, owned by
    the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as
    root). ``fsync`` is off: a test database need not survive a power cut.
    """

    def __init__(self, port: int | None = None) -> None:
        if not (PG_BIN / "initdb").is_file():
            raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}): apt-get install -y postgresql-15")
        self.port = port or free_port()
        self.data = Path(tempfile.mkdtemp(prefix="i2v-pg-"))
        self.url = f"postgresql+asyncpg://prefect@127.0.0.1:{self.port}/prefect"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.data, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "prefect", "--no-sync")
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "prefect", "prefect")

    def stop(self) -> None:
        """Stop the server at once and remove its data."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.data, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(PG_BIN / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)


class Server(Started):
    """``prefect server start`` on loopback, with its own PREFECT_HOME (and database, when given)."""

    def __init__(
        self,
        home: Path,
        folder: Path,
        port: int | None = None,
        scheduler_loop_s: float | None = None,
        database_url: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.home = home
        command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        extra = {}
        if scheduler_loop_s is not None:
            # Prefect's scheduler creates due runs once a minute by default: tests make it look sooner.
            extra["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = str(scheduler_loop_s)
        if database_url is not None:
            extra["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        super().__init__(command, prefect_env(home, self.api_url, extra), folder / "server.log")

    def wait_healthy(self, timeout_s: float = 120.0) -> float:
        """Seconds until ``/api/health`` answered; raises if the server died or never answered."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"prefect server exited:\n{self.tail()}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"prefect server did not answer in {timeout_s:.0f} s:\n{self.tail()}")


class Worker(Started):
    """A process worker of the ``i2v`` pool: ``deployments/worker.sh``, or ``prefect worker start`` as printed."""

    def __init__(self, name: str, env: Mapping[str, str], folder: Path, *, limit: int, plain: bool = False) -> None:
        self.name = name
        if plain:
            # What `prefect deploy` tells an operator to run, from the project's environment.
            command = [str(BIN / "prefect"), "worker", "start", "--pool", "i2v", "--limit", str(limit), "--name", name]
            env = {k: v for k, v in env.items() if k != "I2V_HOME"}
        else:
            command = [str(REPO / "deployments" / "worker.sh"), "--name", name]
            env = {**env, "I2V_WORKER_LIMIT": str(limit)}
        # Started from a folder of its own, not the clone: the flow runs must find the code themselves.
        super().__init__(command, env, folder / f"{name}.log", cwd=folder)

    def kill_everything(self) -> int:
        """SIGKILL the worker and every process it started at once, as when its machine dies; how many."""
        try:
            processes = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            return 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(processes, timeout=STOP_GRACE_S)
        return len(processes)

    def wait_started(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if f"Worker '{self.name}' started" in self.text():
                return
            if not self.alive():
                raise RuntimeError(f"worker {self.name} exited:\n{self.tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} did not start in {timeout_s:.0f} s:\n{self.tail()}")

    def submitted(self) -> set[str]:
        """Ids of the flow runs this worker took (not those the server gave another worker)."""
        text = self.text()
        tried = {match.group(2) for match in _SUBMITTING.finditer(text) if match.group(1) == self.name}
        return tried - {match.group(1) for match in _ABORTED.finditer(text)}


def run_command(command: Sequence[str], env: Mapping[str, str], log: Path, timeout_s: float = 300.0) -> Any:
    """Run a command to its end with its output in ``log``; raises with the log's tail if it fails."""
    with log.open("wb") as handle:
        done = subprocess.run(
            list(command), env=dict(env), cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return done
