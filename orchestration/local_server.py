"""Prefect's local server for a run that names none, started before the flow's modules load.

Without ``PREFECT_API_URL``, Prefect starts a server of its own in a child process (its
"ephemeral" mode) the first time the flow talks to the API: after this process has
imported Prefect and the flows, so the two start-ups, several seconds each, add up.
:func:`start_local_server` starts that same server (the same command and settings Prefect's
ephemeral mode uses) first, so it boots on one core while the flow's modules import on
the other, and points ``PREFECT_API_URL`` at it for this process.

This module imports nothing of Prefect: that is the point of it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from i2v.cli.lifetime import ends_with_parent
from i2v.errors import ConfigError

#: The start-up limit when ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` is not set.
DEFAULT_STARTUP_S = 90.0
#: How long a server asked to stop may take before it is killed.
STOP_GRACE_S = 5.0


@dataclass
class LocalServer:
    """A server this process started (or None of it, when ``PREFECT_API_URL`` names one)."""

    process: subprocess.Popen[bytes] | None = None
    api_url: str | None = None

    def wait_ready(self) -> None:
        """Return once the server answers; raise :class:`ConfigError` if it never does."""
        if self.process is None or self.api_url is None:
            return
        limit = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or DEFAULT_STARTUP_S)
        deadline = time.monotonic() + limit
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{self.api_url}/health").status_code == 200:
                        return
                if self.process.poll() is not None:
                    raise ConfigError(f"Prefect's local server exited with status {self.process.returncode}")
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"Prefect's local server did not answer within {limit:.0f}s "
                        "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
                    )
                time.sleep(0.1)


def start_local_server() -> LocalServer:
    """Start Prefect's local server unless ``PREFECT_API_URL`` is set; it stops when this process exits.

    Call :meth:`LocalServer.wait_ready` before the first flow runs. The server is stopped
    from an exit handler, registered before Prefect is imported: exit handlers run last
    first, so Prefect's own (which send the last logs and events) run while it still answers.
    A process that ends without running its exit handlers (killed, ``os._exit``) takes the
    server with it on Linux: the server is killed when the thread that called this ends,
    so call it from the main thread.
    """
    if os.environ.get("PREFECT_API_URL"):
        return LocalServer()
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - this interpreter, on Prefect's own server app
        _command(port),
        # As Prefect's ephemeral mode sets them: no UI, the services an ephemeral server runs.
        env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"},
        preexec_fn=ends_with_parent(signal.SIGKILL),
    )
    atexit.register(_stop, process)
    api_url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = api_url
    return LocalServer(process, api_url)


def _command(port: int) -> list[str]:
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise ConfigError("prefect is not installed")
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(spec.origin).parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
