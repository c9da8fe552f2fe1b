"""Shared fixtures: real servers on loopback (S3 via moto's standalone server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

# Before any Prefect server starts: no analytics calls to a closed network, and room for
# a slow ephemeral start-up on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
# Under pytest-xdist each worker process runs flows on an ephemeral server of its own:
# one SQLite database shared by two workers' servers would lock.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _home = Path(tempfile.gettempdir()) / f"i2v-tests-prefect-{os.getpid()}-{os.environ['PYTEST_XDIST_WORKER']}"
    os.environ["PREFECT_HOME"] = str(_home)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop Prefect and the engine use."""
    return "asyncio"


# --- S3: moto's standalone server over real HTTP -------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after a grace period; always by process id."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server started for this test session."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1.0)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"moto_server did not start on port {port}") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        stop_process(process)
        log.close()


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (through the usual AWS settings) at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return s3_endpoint


@pytest.fixture
def s3_client(aws_env: str) -> Any:
    """A boto3 S3 client talking to the moto server."""
    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A fresh, empty bucket."""
    name = f"i2v-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's API settings, and cached clients never leak between tests."""
    for name in ("AIMLAPI_API_KEY", "AIMLAPI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
    from orchestration import resources

    resources.reset()


# --- end of S3 fixtures ----------------------------------------------------------------


# --- AI/ML API emulator: real HTTP on 127.0.0.1 ----------------------------------------

EMULATOR_KEY = "sk-emulator-test-5c1e9b7a"


@pytest.fixture
def start_emulator() -> Iterator[Any]:
    """Start emulators (quick jobs, ``EMULATOR_KEY``) for one test; each call returns a base URL."""
    from contextlib import ExitStack

    from i2v.emulator import EmulatorConfig, running_emulator

    with ExitStack() as stack:

        def start(**overrides: Any) -> str:
            settings: dict[str, Any] = {"api_key": EMULATOR_KEY, "generation_seconds": 0.3}
            config = EmulatorConfig(**{**settings, **overrides})
            return stack.enter_context(running_emulator(config))

        yield start


@pytest.fixture(scope="session")
def emulator_auth() -> dict[str, str]:
    """The header every emulator started by ``start_emulator`` expects."""
    return {"Authorization": f"Bearer {EMULATOR_KEY}"}


# --- end of emulator fixtures ----------------------------------------------------------
