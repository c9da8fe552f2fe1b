"""The API client's translation of answers into results and exceptions.

These drive the client through ``httpx.MockTransport`` to pin down each status and
body shape precisely; the same client runs against the emulator over real HTTP in
``test_jobs.py`` and ``test_flow.py``.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from i2v.api.client import ConnectionGate, VideoApi, make_http_client
from i2v.api.downloads import open_download
from i2v.api.error_answers import parse_retry_after
from i2v.api.models import get_model
from i2v.api.settings import ApiSettings, Secret
from i2v.errors import (
    ApiError,
    AuthError,
    BadResponse,
    DownloadError,
    OutOfCredits,
    RateLimited,
    RequestRejected,
    ServerError,
    TransportError,
)
from tests.loopback import serving

pytestmark = pytest.mark.anyio

KEY = "sk-very-secret-0123456789"
ROUTE = get_model("alibaba/wan2.5-i2v-preview").route()
LEGACY = get_model("alibaba/wan2.5-i2v-preview").route("legacy")


def _api(handler: Callable[[httpx.Request], httpx.Response]) -> VideoApi:
    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler))
    return VideoApi(http, Secret(KEY))


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"statusCode": status, "message": message, "path": "/v2/video/generations", "requestId": "req-1"}
    return httpx.Response(status, json=body, headers=headers)


async def test_create_sends_bearer_key_and_body_to_the_route_path() -> None:
    """Create posts JSON to the model's path with the key only in the Authorization header."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "gen-1", "status": "queued"})

    generation = await _api(handler).create(ROUTE, {"model": "m", "prompt": "p"})
    assert generation.id == "gen-1"
    assert generation.is_running
    (request,) = seen
    assert request.url.path == "/v2/video/generations"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {"model": "m", "prompt": "p"}


async def test_fetch_parses_both_schema_generations() -> None:
    """Fetch reads the video URL, the error object and credits_used or the older tokens_used."""
    answers = iter(
        [
            {
                "id": "g",
                "status": "completed",
                "video": {"url": "https://cdn/x.mp4"},
                "meta": {"usage": {"credits_used": 12.5}},
            },
            {
                "id": "g",
                "status": "completed",
                "video": {"url": "https://cdn/y.mp4"},
                "meta": {"usage": {"tokens_used": 7}},
            },
            {"id": "g", "status": "error", "error": {"name": "Moderation", "message": "flagged"}},
            {"id": "g", "status": "Waiting"},
        ]
    )
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.url.path}?{request.url.query.decode()}")
        return httpx.Response(200, json=next(answers))

    api = _api(handler)
    first = await api.fetch(ROUTE, "g")
    assert (first.video_url, first.credits_used, first.is_completed) == ("https://cdn/x.mp4", 12.5, True)
    assert (await api.fetch(LEGACY, "g")).credits_used == 7
    failed = await api.fetch(ROUTE, "g")
    assert failed.is_failed
    assert (failed.error_name, failed.error_message) == ("Moderation", "flagged")
    assert (await api.fetch(ROUTE, "g")).is_running, "statuses are case-insensitive; 'waiting' is running"
    assert paths[0] == "/v2/video/generations?generation_id=g"
    assert paths[1] == "/v2/generate/video/alibaba/generation?generation_id=g"


@pytest.mark.parametrize(
    ("status", "exc_type", "retryable"),
    [
        (400, RequestRejected, False),
        (401, AuthError, False),
        (403, OutOfCredits, True),
        (404, RequestRejected, False),
        (429, RateLimited, True),
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
        (504, ServerError, True),
    ],
)
async def test_error_statuses_map_to_the_exception_tree(status: int, exc_type: type[ApiError], retryable: bool) -> None:
    """Each error status becomes its exception, keeping the server's message and request id."""
    api = _api(lambda request: _error(status, "Body validation error! duration: Expected 5 | 10, received 7"))
    with pytest.raises(exc_type) as info:
        await api.create(ROUTE, {})
    exc = info.value
    assert f"HTTP {status}" in str(exc)
    assert "Expected 5 | 10, received 7" in str(exc)
    assert exc.status == status
    assert exc.request_id == "req-1"
    assert exc.retryable is retryable


async def test_retry_after_in_seconds_and_as_a_date() -> None:
    """Retry-After is read as delta-seconds or as an HTTP date."""
    api = _api(lambda request: _error(429, "Too Many Requests", {"Retry-After": "7"}))
    with pytest.raises(RateLimited) as info:
        await api.fetch(ROUTE, "g")
    assert info.value.retry_after == 7.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (parse_retry_after(when) or 0) <= 31
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_non_json_success_and_missing_fields_are_bad_responses() -> None:
    """A 200 that is not the contract is a BadResponse, not a crash."""
    with pytest.raises(BadResponse):
        await _api(lambda request: httpx.Response(200, text="<html>")).fetch(ROUTE, "g")
    with pytest.raises(BadResponse, match="lacks 'id' or 'status'"):
        await _api(lambda request: httpx.Response(200, json={"status": "queued"})).create(ROUTE, {})


async def test_transport_errors_say_whether_the_request_may_have_been_sent() -> None:
    """Connect failures are 'not sent' (safe to resend a create); read failures are 'maybe sent'."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TransportError) as refused:
        await _api(refuse).create(ROUTE, {})
    assert refused.value.sent is False
    with pytest.raises(TransportError) as dropped:
        await _api(drop).create(ROUTE, {})
    assert dropped.value.sent is True


async def test_the_key_never_appears_in_errors_or_reprs() -> None:
    """Exceptions, settings and auth objects never spell out the key."""
    api = _api(lambda request: _error(401, "This request requires a valid API key."))
    with pytest.raises(AuthError) as info:
        await api.create(ROUTE, {})
    settings = ApiSettings.from_env({"AIMLAPI_API_KEY": KEY})
    texts = [str(info.value), repr(info.value), repr(settings), str(settings.api_key), repr(api.__dict__)]
    assert not any(KEY in text for text in texts)
    with pytest.raises(TypeError, match="not serialisable"):
        pickle.dumps(settings.api_key)


def test_settings_normalise_the_base_url() -> None:
    """A base URL written with the vendor samples' /v2 suffix still works; a missing key is a config error."""
    settings = ApiSettings.from_env({"AIMLAPI_API_KEY": "k", "AIMLAPI_BASE_URL": "https://api.aimlapi.com/v2/"})
    assert settings.base_url == "https://api.aimlapi.com"
    from i2v.errors import ConfigError

    with pytest.raises(ConfigError, match="AIMLAPI_API_KEY is not set"):
        ApiSettings.from_env({})


async def test_download_sends_no_key_and_reports_status() -> None:
    """Downloads never carry the API key; an expired URL is a DownloadError with its status."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("expired.mp4"):
            return httpx.Response(403, text="Request has expired")
        return httpx.Response(200, content=b"x" * 10)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with open_download(http, "https://cdn.test/ok.mp4") as (chunks, length):
        assert b"".join([chunk async for chunk in chunks]) == b"x" * 10
        assert length == 10
    with pytest.raises(DownloadError) as info:
        async with open_download(http, "https://cdn.test/expired.mp4"):
            pass
    assert info.value.status == 403
    assert all("Authorization" not in request.headers for request in seen)


async def test_a_download_arrives_in_chunks_of_at_least_chunk_size_and_decoded() -> None:
    """Pieces read off the network are joined into chunks of at least ``chunk_size``; a gzip body arrives decoded."""
    import gzip

    body = bytes(range(256)) * 10_000  # 2.56 MB
    pieces = [body[start : start + 65_536] for start in range(0, len(body), 65_536)]

    async def stream() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".gz.mp4"):
            return httpx.Response(200, content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
        return httpx.Response(200, content=stream())

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with open_download(http, "https://cdn.test/ok.mp4", chunk_size=1 << 20) as (chunks, _):
        got = [chunk async for chunk in chunks]
    assert b"".join(got) == body
    assert [len(chunk) >= 1 << 20 for chunk in got] == [True, True, False]
    async with open_download(http, "https://cdn.test/ok.gz.mp4") as (chunks, _):
        assert b"".join([chunk async for chunk in chunks]) == body


async def test_a_proxy_named_in_the_environment_carries_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, requests go to that proxy, naming the API's URL in full."""
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        """A forward proxy that answers every request itself, noting its request line."""

        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.requestline)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with serving(Proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        settings = ApiSettings(api_key=Secret(KEY), base_url="http://api.invalid/v2", timeout_s=5)
        async with make_http_client(settings) as http:
            response = await http.get("/generate/video/alibaba/generation", params={"generation_id": "g1"})
    assert response.status_code == 200
    assert seen == ["GET http://api.invalid/v2/generate/video/alibaba/generation?generation_id=g1 HTTP/1.1"]


async def test_creates_waiting_for_a_connection_go_before_waiting_polls() -> None:
    """With every connection busy, a create that queued last is still sent before the polls queued ahead of it."""
    release = asyncio.Event()
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        polled = request.url.params.get("generation_id")
        sent.append(f"GET:{polled}" if polled else request.method)
        if len(sent) == 1:
            await release.wait()
        return httpx.Response(200, json={"id": "g", "status": "queued"})

    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler))
    api = VideoApi(http, Secret(KEY), concurrency=1)
    async with asyncio.TaskGroup() as group:
        group.create_task(api.fetch(ROUTE, "busy"))
        for name in ("a", "b"):
            await asyncio.sleep(0.01)
            group.create_task(api.fetch(ROUTE, name))
        await asyncio.sleep(0.01)
        group.create_task(api.create(ROUTE, {"prompt": "p"}))
        await asyncio.sleep(0.01)
        release.set()
    assert sent == ["GET:busy", "POST", "GET:a", "GET:b"]


async def test_an_answer_says_how_long_its_request_waited_for_a_connection() -> None:
    """``queued_s`` is the time spent waiting behind busy connections, not the request's own time."""
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("generation_id") == "busy":
            await release.wait()
        return httpx.Response(200, json={"id": "g", "status": "queued"})

    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler))
    api = VideoApi(http, Secret(KEY), concurrency=1)
    busy = asyncio.ensure_future(api.fetch(ROUTE, "busy"))
    await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(api.fetch(ROUTE, "next"))
    await asyncio.sleep(0.3)
    release.set()
    first, second = await busy, await waiting
    assert first.queued_s < 0.05
    assert 0.25 <= second.queued_s < 1.0


async def test_a_request_cancelled_as_it_is_handed_a_connection_passes_the_connection_on() -> None:
    """A waiter cancelled in the moment it was given a connection gives it to the next waiter, and none is lost."""
    gate = ConnectionGate(1)
    order: list[str] = []

    async def take(name: str, *, first: bool) -> None:
        async with gate.slot(first=first):
            order.append(name)

    async with gate.slot(first=False):
        doomed = asyncio.ensure_future(take("doomed", first=True))
        later = asyncio.ensure_future(take("later", first=False))
        await asyncio.sleep(0)
    # The connection was just handed to "doomed", which has not run since.
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    await asyncio.wait_for(later, 1.0)
    assert doomed.cancelled()
    assert order == ["later"]
    async with asyncio.timeout(1.0), gate.slot(first=False):
        pass
