"""The API key is found nowhere: not in logs at DEBUG, Prefect's database, the destination or any error."""

from __future__ import annotations

import traceback
from pathlib import Path

import httpx
import pandas as pd
import pytest

from i2v.api.client import VideoApi
from i2v.api.models import get_model
from i2v.api.settings import Secret
from i2v.errors import I2VError
from tests.emulated import emulator
from tests.runs import cli_env, run, write_rows

CANARY = "sk-canary-5e1f0c2d9a7b4e3f8c6d1a0b9e8f7a6d"
WRONG = "sk-wrong-canary-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
pytestmark = pytest.mark.anyio


def _every_byte_under(*folders: Path) -> bytes:
    """The contents of every file below ``folders``: databases, logs, JSON, Parquet, CSV, HTML."""
    return b"\n".join(path.read_bytes() for folder in folders for path in sorted(folder.rglob("*")) if path.is_file())


def test_a_full_run_with_failures_leaves_the_key_nowhere(tmp_path: Path) -> None:
    """Runs meeting 401, 500, resets and a job error, logged at DEBUG, leave neither key in any output."""
    csv = write_rows(tmp_path, 6)
    with csv.open("a") as handle:
        handle.write("a.png,A forbidden gate,5,480p\n")  # the emulator's moderation fails this job
    dest, home, log = tmp_path / "out", tmp_path / "prefect", tmp_path / "run.log"
    debug = {"PREFECT_LOGGING_LEVEL": "DEBUG", "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG"}
    with emulator(api_key=CANARY, generation_seconds=0.3) as emu:
        faults = [
            {"on": "create", "status": 500, "after_create": True},  # paid, unanswered: looked up in the logs
            {"on": "fetch", "kind": "reset", "count": 2},  # transport errors
            {"on": "download", "status": 503},
        ]
        httpx.post(f"{emu.base_url}/_emulator/faults", json=faults, timeout=5).raise_for_status()
        # One job at a time, so the scripted 500 meets the first row and the moderated row stays last.
        args = ["run", str(csv), "--dest", str(dest), "--poll-interval", "0.2", "--max-in-flight", "1"]
        assert run(args, cli_env(emu.base_url, CANARY, home, **debug), log) == 1
        fresh = write_rows(tmp_path, 2, name="fresh.csv", prompt="New scene {i}")
        args[1] = str(fresh)
        assert run(args, cli_env(emu.base_url, WRONG, home, **debug), log) == 2, "the wrong key stops the run"
        stats = emu.stats()
    manifest = pd.read_parquet(min((dest / "runs").iterdir()) / "manifest.parquet")
    kinds = set(manifest["error_kind"].dropna())
    assert "generation_failed" in kinds, "the failures the check is about happened"
    assert stats["logs_requests"] >= 1, "the lost create was looked up in the usage logs"
    assert stats["responses"]["401"] >= 1, "the wrong key reached the API and was refused"
    output = log.read_bytes()
    assert b"| DEBUG   |" in output, "logs were captured at DEBUG"
    assert b"HTTP Request:" in output, "httpx's too"
    everything = output + _every_byte_under(dest, home)
    assert b"generate-videos" in everything, "Prefect's database (parameters, logs, artifacts) was read"
    for key in (CANARY, WRONG):
        assert key.encode() not in everything
        assert key[-12:].encode() not in everything, "not even a tail of it"


async def test_errors_mask_a_key_the_server_echoes() -> None:
    """A server that quotes the key back in 401, 500 and malformed answers never gets it into a message or repr."""

    def echo(request: httpx.Request) -> httpx.Response:
        said = request.headers["Authorization"]
        status = {"/401": 401, "/500": 500}.get(request.url.params.get("generation_id", ""), 200)
        if status == 200:
            return httpx.Response(200, json={"unexpected": said})
        return httpx.Response(status, json={"message": f"key {said} refused", "statusCode": status})

    route = get_model("alibaba/wan2.5-i2v-preview").route(None)
    async with httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(echo)) as http:
        api = VideoApi(http, Secret(CANARY))
        seen: list[I2VError] = []
        for generation_id in ("/401", "/500", "/200"):
            with pytest.raises(I2VError) as info:
                await api.fetch(route, generation_id)
            seen.append(info.value)
    assert [type(exc).__name__ for exc in seen] == ["AuthError", "ServerError", "BadResponse"]
    for exc in seen:
        shown = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)
        assert "****" in shown
        assert CANARY not in shown
    assert CANARY not in repr(Secret(CANARY)) + str(Secret(CANARY))
    with pytest.raises(TypeError):
        Secret(CANARY).__reduce__()
