"""Running ``i2v`` as a user does, in a process of its own, for tests that kill or signal it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

I2V = Path(sys.executable).with_name("i2v")


def write_rows(folder: Path, count: int, *, name: str = "rows.csv", prompt: str = "Scene {i} of the harbour") -> Path:
    """A CSV of ``count`` rows with distinct prompts over two small local images."""
    for image, color in (("a", (200, 80, 20)), ("b", (20, 80, 200))):
        if not (folder / f"{image}.png").exists():
            Image.new("RGB", (48, 27), color).save(folder / f"{image}.png")
    csv = folder / name
    lines = [f"{'ab'[i % 2]}.png,{prompt.format(i=i)},5,480p" for i in range(count)]
    csv.write_text("image_url,prompt,duration,resolution\n" + "\n".join(lines) + "\n")
    return csv


def cli_env(base_url: str, key: str, prefect_home: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``i2v`` process talking to an emulator, with its own Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI_", "PREFECT_API", "I2V_"))}
    env.update(
        AIMLAPI_BASE_URL=base_url,
        AIMLAPI_API_KEY=key,
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
        **extra,
    )
    return env


def start(
    args: Sequence[str], env: dict[str, str], log: Path, *, supervised: bool = True, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``i2v ARGS`` in a session of its own (so its whole group can be signalled or killed).

    ``supervised=False`` starts the process that runs the flow directly, as the watching
    ``i2v run`` does, so that a kill of its group reaches Prefect's server too.
    """
    if not supervised:
        env = {**env, "I2V_SUPERVISED": "1"}
    handle = log.open("ab")
    return subprocess.Popen(
        [str(I2V), *args], env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
    )


def run(args: Sequence[str], env: dict[str, str], log: Path, *, timeout: float = 300, cwd: Path | None = None) -> int:
    """Run ``i2v ARGS`` to the end (in ``cwd``); returns its exit status."""
    process = start(args, env, log, cwd=cwd)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"i2v {args[0]} still running after {timeout:g} s:\n{log.read_text()[-4000:]}") from None
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process's whole group, whatever is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
