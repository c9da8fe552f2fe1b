"""A small client for AI/ML API's video generation endpoints.

The :class:`httpx.AsyncClient` is passed in (its ``base_url`` points at the API, its
transport can be anything httpx accepts), so the same code talks to the real service,
the emulator, or a test transport. Everything is async: thousands of jobs wait on one
event loop, none of them holding a thread. One method per request; no retries here:
whether a request may be sent again is the caller's decision (see :mod:`i2v.engine.retry`).
Every failure leaves this module as an :mod:`i2v.errors` exception, translated at the
edge (:mod:`i2v.api.error_answers`). Finished videos are streamed by
:func:`i2v.api.downloads.open_download`, without the key.

The key is attached per request through :class:`BearerAuth`, so it never sits in the
client's default headers and is never sent to the video download host.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from i2v.api import metrics, usage_logs
from i2v.api.error_answers import clip, error_from_response
from i2v.api.models import COMPLETED_STATUS, FAILED_STATUSES, RUNNING_STATUSES, Route
from i2v.api.settings import ApiSettings, Secret
from i2v.api.usage_logs import LogPage
from i2v.errors import (
    BadResponse,
    I2VError,
    TransportError,
)

_MAX_MESSAGE = 600
#: Request tracing (the vendor's "Request tracing and cost headers"): sent, and answered.
CLIENT_REQUEST_ID = "X-Client-Request-Id"
INFERENCE_ID = "x-inference-id"
CREDITS_USED = "x-aimlapi-credits-used"
USD_SPENT = "x-aimlapi-usd-spent"


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <key>`` from a :class:`Secret`."""

    def __init__(self, key: Secret) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.key.reveal()}"
        yield request


@dataclass(frozen=True)
class Generation:
    """One answer about a generation job."""

    id: str
    status: str
    video_url: str | None = None
    error_name: str | None = None
    error_message: str | None = None
    credits_used: float | None = None
    #: Seconds the request waited for a free connection before it was sent: the answer
    #: tells the job's state at some moment after that wait, not before it.
    queued_s: float = 0.0
    #: ``x-inference-id``: the id the provider's logs and billing know the request by.
    inference_id: str | None = None
    #: ``x-aimlapi-usd-spent``: what the provider reports this generation cost, in USD.
    usd_spent: float | None = None

    @property
    def is_running(self) -> bool:
        return self.status in RUNNING_STATUSES

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED_STATUS

    @property
    def is_failed(self) -> bool:
        """The job ended without a video (``error``, or another word for the same end)."""
        return self.status in FAILED_STATUSES


#: Connections to the API. A poll or create takes milliseconds, so a few connections
#: serve thousands of jobs; httpcore looks over every pooled connection (and, for every
#: request queued inside it, over them again) each time a request starts or ends, so its
#: cost per request grows with the square of the pool. Requests beyond the pool wait in
#: :class:`VideoApi`'s gate, where waiting is free.
API_CONNECTIONS = 8
#: ``GET /models/metrics`` only speeds up polling: it never holds a run back for long.
METRICS_TIMEOUT_S = 5.0


def make_http_client(
    settings: ApiSettings, *, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = API_CONNECTIONS
) -> httpx.AsyncClient:
    """An HTTP client for API calls (or, with ``max_connections`` of the transfers, downloads).

    Pooled, with finite timeouts for every network step. Waiting for a pooled connection
    is not a failure, so that wait has no limit; callers keep it short by never asking
    for more connections at once than the pool holds (see :data:`API_CONNECTIONS`).
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        base_url=settings.base_url,
        # None: httpx's own, with ``limits``, honouring HTTP(S)_PROXY and NO_PROXY.
        transport=transport,
        limits=limits,
        timeout=httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s), pool=None),
        headers={"User-Agent": "i2v-pipeline"},
        # API calls are never redirected; downloads follow theirs one checked hop at a time.
        follow_redirects=False,
    )


class ConnectionGate:
    """Requests sent at once, at most ``size``; creates waiting go before polls waiting.

    A create held back leaves one of the provider's slots idle for as long as it waits,
    while a poll held back mostly asks about a job that is still running: when jobs
    finish in waves, the creates that refill their slots must not queue behind the
    polls of the wave. Within each kind, first come, first served.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    @asynccontextmanager
    async def slot(self, *, first: bool) -> AsyncIterator[None]:
        """Hold one of the connections; ``first``: ahead of every waiting request that is not."""
        await self._acquire(first)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, first: bool) -> None:
        if self._free > 0 and not any(self._waiting):
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        queue = self._waiting[0 if first else 1]
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a slot just as it was cancelled: pass the slot on.
                self._release()
            else:
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class VideoApi:
    """Create and fetch generations on one API base URL."""

    def __init__(self, http: httpx.AsyncClient, api_key: Secret, *, concurrency: int = API_CONNECTIONS) -> None:
        """``concurrency``: requests sent at once, at most the client's pooled connections."""
        self._http = http
        self._auth = BearerAuth(api_key)
        self._gate = ConnectionGate(concurrency)

    async def aclose(self) -> None:
        """Close the client it was given (the API's connections)."""
        await self._http.aclose()

    async def create(
        self, route: Route, body: Mapping[str, Any], *, client_request_id: str | None = None
    ) -> Generation:
        """Start a generation. Not idempotent: see :func:`i2v.engine.retry.is_safe_to_resubmit`.

        ``client_request_id`` goes as ``X-Client-Request-Id``: the provider's usage logs
        list the request under it, so a create whose answer is lost can be found.
        """
        headers = {CLIENT_REQUEST_ID: client_request_id} if client_request_id else None
        with self._without_key():
            answer = await self._send("POST", route.path, first=True, json=dict(body), headers=headers)
            return _parse_generation(answer, what="create")

    async def fetch(self, route: Route, generation_id: str) -> Generation:
        """The job's current status, and its video URL once completed."""
        with self._without_key():
            answer = await self._send("GET", route.path, first=False, params={"generation_id": generation_id})
            return _parse_generation(answer, what="fetch")

    async def logs(self, *, start: float, end: float, model: str | None, offset: int, limit: int) -> LogPage:
        """One page of the provider's usage logs between two unix times (newest first)."""
        params = usage_logs.query(start=start, end=end, model=model, offset=offset, limit=limit)
        with self._without_key():
            answer = await self._send("GET", usage_logs.LOGS_PATH, first=False, params=params)
            return usage_logs.parse_page(answer.data)

    async def model_durations(
        self, models: Iterable[str], *, timeout_s: float = METRICS_TIMEOUT_S
    ) -> dict[str, metrics.Durations]:
        """How long ``models``' requests take now (``GET /models/metrics``), by model; absent: no data.

        The endpoint needs no key, so none is sent.
        """
        with self._without_key():
            answer = await self._send(
                "GET",
                metrics.METRICS_PATH,
                first=False,
                keyed=False,
                params=metrics.query(models),
                timeout=timeout_s,
            )
            return metrics.parse(answer.data)

    @contextmanager
    def _without_key(self) -> Iterator[None]:
        """Errors quote the server's words, and a server may quote the key it was sent: mask it."""
        try:
            yield
        except I2VError as exc:
            key = self._auth.key.reveal()
            if key and key in exc.message:
                exc.message = exc.message.replace(key, "****")
                exc.args = (exc.message,)
            raise

    async def _send(self, method: str, path: str, *, first: bool, keyed: bool = True, **kwargs: Any) -> _Answer:
        """The answer's JSON and headers, and how long the request waited in the gate before it was sent.

        ``keyed=False``: the request carries no key (for endpoints that need none).
        """
        queued_at = time.monotonic()
        chosen = self._auth if keyed else None
        try:
            async with self._gate.slot(first=first):
                queued_s = time.monotonic() - queued_at
                response = await self._http.request(method, path, auth=chosen, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransportError(f"{method} {path}: could not connect ({type(exc).__name__})", sent=False) from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {path}: no answer ({type(exc).__name__}: {exc})", sent=True) from exc
        if response.is_success:
            try:
                return _Answer(response.json(), queued_s, response.headers)
            except ValueError as exc:
                raise BadResponse(f"{method} {path}: answer is not JSON", status=response.status_code) from exc
        raise error_from_response(response)


@dataclass(frozen=True)
class _Answer:
    data: Any
    queued_s: float
    headers: httpx.Headers


def _parse_generation(answer: _Answer, *, what: str) -> Generation:
    data = answer.data
    if not isinstance(data, dict) or not data.get("id") or not isinstance(data.get("status"), str):
        raise BadResponse(f"{what}: answer lacks 'id' or 'status': {clip(repr(data))}")
    video = data.get("video")
    video_url = video.get("url") if isinstance(video, dict) else None
    error = data.get("error")
    error_name = error_message = None
    if isinstance(error, dict):
        error_name = _str_or_none(error.get("name"))
        error_message = _str_or_none(error.get("message"))
    elif error:
        error_message = str(error)
    usage = (data.get("meta") or {}).get("usage") or {}
    credits = usage.get("credits_used", usage.get("tokens_used")) if isinstance(usage, dict) else None
    return Generation(
        id=str(data["id"]),
        status=data["status"].strip().lower(),
        video_url=_str_or_none(video_url),
        error_name=error_name,
        error_message=clip(error_message) if error_message else None,
        credits_used=float(credits) if isinstance(credits, (int, float)) else _header_number(answer, CREDITS_USED),
        queued_s=answer.queued_s,
        inference_id=_str_or_none(answer.headers.get(INFERENCE_ID)),
        usd_spent=_header_number(answer, USD_SPENT),
    )


def _header_number(answer: _Answer, name: str) -> float | None:
    try:
        value = float(answer.headers.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
