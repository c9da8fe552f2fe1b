"""``GET /models/metrics``: the emulator answers as the vendor documents, and polls start from its figures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from i2v.api.client import VideoApi, make_http_client
from i2v.api.downloads import DownloadRules
from i2v.api.metrics import Durations
from i2v.api.settings import Secret
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.offload import Offload
from i2v.engine.pacing import PollPacer
from i2v.engine.runner import Engine
from i2v.engine.spec import EngineOptions
from i2v.storage.local import LocalDestination
from tests.emulated import Emulator, emulator
from tests.engines import draw_images, make_rows

WAN25 = "alibaba/wan2.5-i2v-preview"
WAN26 = "alibaba/wan-2-6-i2v"


def _metrics(emu: Emulator, params: list[tuple[str, str]] | None = None) -> httpx.Response:
    """The emulator's answer to ``GET /models/metrics`` with ``params``, sent without a key."""
    return httpx.get(f"{emu.base_url}/models/metrics", params=tuple(params or ()), timeout=5)


def test_metrics_need_no_key_and_report_duration_percentiles_of_the_emulators_jobs() -> None:
    """Without a key: window, time and per model only duration_ms p50-p99 of the generation times jobs are given."""
    with emulator(generation_seconds=80.0, generation_jitter=0.25) as emu:
        answer = _metrics(emu)
    assert answer.status_code == 200
    data = answer.json()
    assert set(data) == {"window_seconds", "generated_at", "models"}
    assert data["window_seconds"] == 300
    assert data["generated_at"].endswith("Z")
    datetime.fromisoformat(data["generated_at"].replace("Z", "+00:00"))
    by_alias = {entry["alias"]: entry for entry in data["models"]}
    assert {WAN25, WAN26} <= set(by_alias)
    entry = by_alias[WAN25]
    assert set(entry) == {"alias", "endpoint", "metrics"}
    assert entry["endpoint"] == "/v2/video/generations"
    # A video model: no time to first token, no tokens per second.
    assert set(entry["metrics"]) == {"duration_ms"}
    # 80 s varied evenly by 25 % either way: 60 to 100 s.
    assert entry["metrics"]["duration_ms"] == {"p50": 80000.0, "p75": 90000.0, "p90": 96000.0, "p99": 99600.0}


def test_aliases_repeat_match_ids_and_aliases_exactly_and_never_split_on_commas() -> None:
    """Each aliases value keeps one model; a comma-joined pair or an unknown name keeps none."""
    with emulator() as emu:
        both = _metrics(emu, [("aliases", WAN25), ("aliases", WAN26)]).json()["models"]
        joined = _metrics(emu, [("aliases", f"{WAN25},{WAN26}")]).json()["models"]
        unknown = _metrics(emu, [("aliases", "alibaba/wan2.5")]).json()["models"]
    assert sorted(entry["alias"] for entry in both) == sorted([WAN25, WAN26])
    assert joined == []
    assert unknown == []


@pytest.mark.parametrize(
    "params",
    [
        [("model", WAN25)],
        [("aliases", WAN25), ("window", "60")],
        [("aliases", f"m{i}") for i in range(101)],
    ],
    ids=["other-parameter", "other-parameter-beside-aliases", "101-aliases"],
)
def test_unknown_parameters_and_more_than_100_aliases_answer_400_in_the_vendor_shape(
    params: list[tuple[str, str]],
) -> None:
    """Any parameter but aliases, or over 100 aliases, is refused with the vendor's error body."""
    with emulator() as emu:
        answer = _metrics(emu, params)
    assert answer.status_code == 400
    body = answer.json()
    assert {"statusCode", "message", "path", "requestId", "timestamp"} <= set(body)
    assert body["statusCode"] == 400
    assert body["path"] == "/models/metrics"


def test_a_hundred_aliases_are_accepted() -> None:
    """The documented limit itself is allowed."""
    with emulator() as emu:
        answer = _metrics(emu, [("aliases", WAN25)] + [("aliases", f"m{i}") for i in range(99)])
    assert answer.status_code == 200
    assert [entry["alias"] for entry in answer.json()["models"]] == [WAN25]


def test_models_without_a_successful_job_are_absent_not_zero() -> None:
    """Only successful requests are measured: where every job fails, the list is empty."""
    with emulator(job_error_rate=1.0) as emu:
        answer = _metrics(emu)
    assert answer.status_code == 200
    assert answer.json()["models"] == []


@pytest.mark.anyio
async def test_the_client_reads_durations_in_seconds_and_sends_no_key() -> None:
    """model_durations asks for each model once, gets seconds, and no Authorization header leaves."""
    sent: list[httpx.Request] = []

    async def keep(request: httpx.Request) -> None:
        sent.append(request)

    with emulator(generation_seconds=10.0, generation_jitter=0.5) as emu:
        http = make_http_client(emu.settings())
        http.event_hooks["request"].append(keep)
        api = VideoApi(http, Secret(emu.api_key))
        try:
            found = await api.model_durations([WAN25, WAN25])
        finally:
            await api.aclose()
    assert found == {WAN25: Durations(p50=10.0, p75=12.5, p90=14.0, p99=14.9)}
    assert len(sent) == 1
    assert "authorization" not in {name.lower() for name in sent[0].headers}
    assert sent[0].url.params.get_list("aliases") == [WAN25]


class _RefuseMetrics(httpx.AsyncBaseTransport):
    """The real network, except that ``/models/metrics`` cannot be reached."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/models/metrics":
            raise httpx.ConnectError("connection refused", request=request)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@asynccontextmanager
async def _engine(emu: Emulator, dest: Path, *, poll_s: float, metrics_reachable: bool) -> AsyncIterator[Engine]:
    """An engine on the emulator polling every ``poll_s`` until it knows better; closed on exit."""
    transport = None if metrics_reachable else _RefuseMetrics()
    http = make_http_client(emu.settings(), transport=transport)
    engine = Engine(
        api=VideoApi(http, Secret(emu.api_key)),
        downloads=make_http_client(emu.settings()),
        dest=LocalDestination(dest),
        limiter=AdmissionLimiter(8),
        pacer=PollPacer(poll_s),
        offload=Offload(4),
        options=EngineOptions(run="run-1", job_timeout_s=60, downloads=DownloadRules.for_api(emu.base_url)),
    )
    try:
        yield engine
    finally:
        await engine.aclose()


async def _first_wave_fetches(tmp_path: Path, *, metrics_reachable: bool) -> tuple[list[Any], dict[str, Any]]:
    """Eight rows sent at once on jobs of 2 s ± 10 %, polled every 0.25 s until learnt: outcomes and emulator stats."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    images = draw_images(tmp_path)
    rows = make_rows(images, 8)
    with emulator(generation_seconds=2.0, generation_jitter=0.1, max_concurrent=8) as emu:
        async with _engine(emu, tmp_path / "out", poll_s=0.25, metrics_reachable=metrics_reachable) as engine:
            outcomes = await engine.run_batch(rows)
        return outcomes, emu.stats()


@pytest.mark.anyio
async def test_known_long_jobs_are_polled_near_their_end_from_the_first_one(tmp_path: Path) -> None:
    """With the provider's figures, a first wave of 2 s jobs costs at most half the polls of the 0.25 s beat."""
    seeded, seeded_stats = await _first_wave_fetches(tmp_path / "seeded", metrics_reachable=True)
    beat, beat_stats = await _first_wave_fetches(tmp_path / "beat", metrics_reachable=False)
    assert [outcome.status for outcome in seeded] == ["completed"] * 8
    assert [outcome.status for outcome in beat] == ["completed"] * 8
    assert seeded_stats["metrics_requests"] == 1, "asked once for the model, not once per row"
    # On the beat a job of 1.8 s to 2.2 s is polled every 0.25 s: seven times or more.
    assert beat_stats["fetches"] >= 7 * 8
    assert seeded_stats["fetches"] <= beat_stats["fetches"] / 2
    assert sum(outcome.polls for outcome in seeded) == seeded_stats["fetches"]


@pytest.mark.anyio
async def test_unreachable_metrics_leave_the_run_working_on_the_beat(tmp_path: Path) -> None:
    """Metrics that cannot be reached cost nothing but the head start: every row completes."""
    outcomes, stats = await _first_wave_fetches(tmp_path, metrics_reachable=False)
    assert [outcome.status for outcome in outcomes] == ["completed"] * 8
    assert stats["metrics_requests"] == 0
    assert stats["jobs"].get("completed") == 8
