"""The emulator's HTTP application: the vendor's video endpoints plus a few of its own.

Vendor endpoints (Bearer key required)::

    POST /v2/video/generations                      create (universal path)
    GET  /v2/video/generations?generation_id=...    fetch
    POST /v2/generate/video/alibaba/generation      create (legacy path)
    GET  /v2/generate/video/alibaba/generation?...  fetch (older answer schema)
    GET  /v2/logs?period=24h&...                    one row per create and fetch

Vendor endpoints (no key)::

    GET  /models/metrics?aliases=...                generation-time percentiles per model
    GET  /v1/models?include=pricing&id=...          the model catalogue (also /models, /api/v1/models)
    GET  /model/{id}?include=...                    one model of it

Emulator endpoints (no key; the file URL is its own credential)::

    GET  /_emulator/files/<token>.mp4   the finished videos, until their URL expires
    GET  /_emulator/stats               counters, for tests and benchmarks
    POST /_emulator/faults              queue scripted faults (a JSON list, see ``Fault``)

Every API request passes the same gates first, in this order: the key (401), the
request rate (429), the scripted fault due for it (see :mod:`i2v.emulator.faults`), a
seeded random 429 or 5xx. A create then has its body validated (400), its price checked
against the balance (403) and the pending jobs against ``max_pending`` (429); only then
is the job made and billed, after which an ``after_create`` fault or a lost-response
draw can still break the answer.

Whatever the answer, it may then go wrong on the way out (:mod:`i2v.emulator.mishaps`):
held back (slow), cut mid-body by a reset, or, for a download, closed early under its
full ``Content-Length``. A request that meets a scripted fault gets no random mishap, so
a script says exactly what happens to the requests it names.

Every create and fetch answer, errors included, carries the vendor's tracing headers
(:mod:`i2v.emulator.tracing`), and every create and fetch made with the key becomes a
row of ``GET /v2/logs`` (:mod:`i2v.emulator.usage_logs`) a little later
(``logs_delay_seconds``). A create that made its job is listed as succeeded, under the
job's id, even when its answer was lost on the way; the answer itself then carries a
fresh inference id, as the error the client met would. ``/v2/logs`` has a limit of its
own, 200 requests in any 60 seconds, and none of the faults.

A create is answered 201: the vendor's gateway is a NestJS application, whose default
for POST is 201 whatever its OpenAPI files say, and a client must accept any 2xx anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import re
import secrets
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from i2v.api.models import CREATE_PATHS, MODELS, UNIVERSAL_PATH, lookup
from i2v.api.models import Route as ModelRoute
from i2v.emulator import catalogue, chance
from i2v.emulator.config import TIMEOUT_SECONDS, EmulatorConfig, Fault, FaultTarget
from i2v.emulator.connections import Connections, Cut
from i2v.emulator.error_bodies import (
    BODY_INVALID,
    OUT_OF_CREDITS,
    QUERY_INVALID,
    TOO_MANY_JOBS,
    TOO_MANY_REQUESTS,
    api_error,
    storage_error,
)
from i2v.emulator.faults import FaultQueue, QueuedFault
from i2v.emulator.jobs import Job, JobFailure, RenderSpec, Scheduler, warm_up
from i2v.emulator.limits import SlidingWindow, TokenBucket
from i2v.emulator.metrics import METRICS_PATH, MetricsQueryProblem, ServedModel, parse_aliases
from i2v.emulator.metrics import answer as metrics_answer
from i2v.emulator.mishaps import CutAnswer, Mishap, Unsent, hold
from i2v.emulator.pricing import price
from i2v.emulator.render import asked_frame
from i2v.emulator.stats import Stats
from i2v.emulator.statuses import TERMINAL_FAILURES, TERMINAL_WORDS, reported_status
from i2v.emulator.tracing import (
    CLIENT_REQUEST_ID,
    Trace,
    add_tracing,
    looks_issued,
    new_inference_id,
    valid_client_request_id,
)
from i2v.emulator.usage_logs import LogRow, QueryProblem, UsageLog, owns_prefix, parse_query
from i2v.emulator.validation import Issue, check_create, summary

FILES_PREFIX = "/_emulator/files/"
LOGS_PATH = "/v2/logs"
#: ``GET /v2/logs``: at most this many requests in any this many seconds (the vendor's figures).
LOGS_REQUESTS_PER_WINDOW = 200
LOGS_WINDOW_SECONDS = 60.0
#: Renders run side by side in this many threads (the machines this targets have 2 cores).
RENDER_THREADS = 2
#: Fallback when a route has no duration parameter (the models' fixed clip length).
DEFAULT_SECONDS = 5
#: The fields that say a video's length, size and shape, by the names the models use.
DURATION_FIELDS = ("duration", "seconds")
RESOLUTION_FIELDS = ("resolution", "size")
ASPECT_FIELDS = ("aspect_ratio", "ratio")
#: Frame size, rendering at the asked resolution, of a request that names none.
ASKED_FALLBACK_SHORT_SIDE = 720
_OTHER_ORIENTATION = {"16:9": "9:16", "9:16": "16:9", "1:1": "16:9"}

_MODERATION = JobFailure("ContentModerationError", "Input data may contain inappropriate content.")
_INJECTED_JOB_ERROR = JobFailure(
    "InternalError",
    "The model failed to generate the video. Please try again later.",
)
_NOT_JSON = object()


def create_app(config: EmulatorConfig) -> Starlette:
    """A fresh emulator: its own jobs, counters, faults and files."""
    emulator = Emulator(config)
    app = Starlette(
        routes=[
            *(Route(path, emulator.generations, methods=["GET", "POST"]) for path in CREATE_PATHS),
            Route(LOGS_PATH, emulator.logs, methods=["GET"]),
            Route(METRICS_PATH, emulator.metrics, methods=["GET"]),
            *(Route(path, emulator.catalogue, methods=["GET"]) for path in catalogue.CATALOGUE_PATHS),
            Route(catalogue.MODEL_PATH, emulator.catalogue, methods=["GET"]),
            Route(FILES_PREFIX + "{name}", emulator.download, methods=["GET"]),
            Route("/_emulator/stats", emulator.stats_endpoint, methods=["GET"]),
            Route("/_emulator/faults", emulator.add_faults, methods=["POST"]),
        ],
        middleware=[Middleware(_CountResponses, counter=emulator.stats.responses)],
        exception_handlers={HTTPException: _http_exception},
        lifespan=emulator.lifespan,
    )
    app.state.emulator = emulator
    return app


class Emulator:
    """The state of one emulator instance and its request handlers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.faults = FaultQueue(config.faults)
        self.credits_left = config.credits
        self.usage_log = UsageLog()
        self._logs_window = SlidingWindow(LOGS_REQUESTS_PER_WINDOW, LOGS_WINDOW_SECONDS)
        self._bucket: TokenBucket | None = None
        if config.requests_per_second:
            self._bucket = TokenBucket(config.requests_per_second, now=time.monotonic())
        terms = [term.strip() for term in config.blocked_terms if term.strip()]
        self._blocked: re.Pattern[str] | None = None
        if terms:
            words = "|".join(map(re.escape, terms))
            self._blocked = re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
        self.connections = Connections()
        # The fast path of a calm emulator (benchmarks poll it thousands of times a second).
        self._mishaps = any((config.slow_response_rate, config.connection_reset_rate, config.truncated_download_rate))
        self._creates_seen: Counter[str] = Counter()
        self._billed: set[str] = set()
        self._polls: Counter[str] = Counter()
        self._downloads: Counter[str] = Counter()
        self._scheduler: Scheduler | None = None

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            raise RuntimeError("the emulator is not running (its lifespan has not started)")
        return self._scheduler

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        work_dir = self.config.work_dir
        own_dir = work_dir is None
        work_dir = Path(tempfile.mkdtemp(prefix="i2v-emulator-")) if work_dir is None else work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        pool = _render_pool(self.config.render_processes)
        scheduler = self._scheduler = Scheduler(
            max_concurrent=self.config.max_concurrent,
            work_dir=work_dir,
            pool=pool,
            short_side=self.config.short_side,
            fps=self.config.fps,
            url_ttl_seconds=self.config.url_ttl_seconds,
        )
        runner = asyncio.create_task(scheduler.run(), name="i2v-emulator-scheduler")
        try:
            yield
        finally:
            scheduler.stop()
            await runner
            # Off the loop: a render may still be finishing.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
            if own_dir:
                shutil.rmtree(work_dir, ignore_errors=True)

    # --- vendor endpoints ---------------------------------------------------------------

    async def generations(self, request: Request) -> Response:
        trace = Trace(
            created=datetime.now(UTC),
            arrived=time.monotonic(),
            client_request_id=valid_client_request_id(request.headers.getlist(CLIENT_REQUEST_ID)),
        )
        if request.method == "POST":
            self.stats.note_create()
            # Read first: the log row names the model even of a create refused unread.
            raw = await request.body()
            answer = await self.create(request, trace)
            if trace.model is None and self._authorized(request):
                trace.model = _named_model(raw)
            self._trace(request, trace, answer, creating=True)
        else:
            answer = await self.fetch(request, trace)
            self._trace(request, trace, answer, creating=False)
        return answer

    async def create(self, request: Request, trace: Trace) -> Response:
        path = request.url.path
        refused = self._admit(request)
        if refused is not None:
            return refused
        met = self.faults.meet("create")
        mishap: Mishap | None = None
        if met is not None and not met.fault.after_create:
            struck = await self._strike(request, met, lambda fault: _fault_answer(fault, path))
            if isinstance(struck, Response):
                return struck
            if struck.cut is not None:
                # Cut before the service saw the request: the gateway's error is what breaks.
                return await self._deliver(request, api_error(502, None, path), struck)
            mishap = struck

        raw = await request.body()
        try:
            body: Any = json.loads(raw)
            subject_body = chance.canonical(body)
        except ValueError:
            body = _NOT_JSON
            subject_body = raw.decode("utf-8", "replace")
        trace.model = _model_of(body)
        # Each attempt with the same body is its own subject: a retry gets a fresh draw. Bodies
        # are kept as digests: a long dry run must not hold every image it was sent.
        subject = hashlib.blake2b(f"{path}\x00{subject_body}".encode(), digest_size=16).hexdigest()
        attempt = f"{subject}#{self._creates_seen[subject]}"
        self._creates_seen[subject] += 1
        if met is None:
            mishap = self._random_mishap("create", attempt)
        injected = self._injected("create", attempt, path)
        if injected is not None:
            return await self._deliver(request, injected, mishap)

        if body is _NOT_JSON:
            issue = Issue((), "object", "invalid JSON", "Expected object, received invalid JSON")
            return await self._deliver(request, _invalid_body([issue], path), mishap)
        checked = check_create(path, body)
        if checked.route is None or checked.issues:
            return await self._deliver(request, _invalid_body(checked.issues, path), mishap)

        job = self._new_job(checked.route, checked.values, attempt)
        if self.credits_left is not None and job.credits > self.credits_left:
            return await self._deliver(request, api_error(403, OUT_OF_CREDITS, path), mishap)
        limit = self.config.max_pending
        if limit is not None and self.scheduler.pending() >= limit:
            wait = max(1.0, self.scheduler.seconds_until_free())
            refusal = api_error(429, TOO_MANY_JOBS.format(limit=limit), path, retry_after=wait)
            return await self._deliver(request, refusal, mishap)

        self.stats.credits_used += job.credits
        if self.credits_left is not None:
            self.credits_left -= job.credits
        if subject in self._billed:
            # The same request made a job before: a client that resends creates pays twice.
            self.stats.billed_twice += 1
        self._billed.add(subject)
        self.scheduler.submit(job)
        trace.job = job

        if met is not None and met.fault.after_create:
            fault = self.faults.use(met)
            self.stats.note_fault(fault.kind, scripted=True)
            self.stats.lost_responses += 1
            if fault.kind == "reset":
                return CutAnswer(self._created(job), "reset", self.connections)
            error = _fault_answer(fault, path)
            if fault.kind == "timeout":
                return await self._deliver(request, error, Mishap(delay=fault.seconds or TIMEOUT_SECONDS))
            return error
        lost_rate = self.config.lost_response_rate
        if chance.happens(self.config.seed, "create.lost_response", attempt, lost_rate):
            self.stats.note_fault("lost_response")
            self.stats.lost_responses += 1
            return await self._deliver(request, api_error(502, None, path), mishap)
        return await self._deliver(request, self._created(job), mishap, job_made=True)

    async def fetch(self, request: Request, trace: Trace) -> Response:
        path = request.url.path
        self.stats.fetches += 1
        refused = self._admit(request)
        if refused is not None:
            return refused
        met = self.faults.meet("fetch")
        mishap: Mishap | None = None
        if met is not None:
            struck = await self._strike(request, met, lambda fault: _fault_answer(fault, path))
            if isinstance(struck, Response):
                return struck
            mishap = struck

        generation_id = request.query_params.get("generation_id", "").strip()
        if not generation_id:
            issue = Issue(
                ("generation_id",),
                "string",
                "undefined",
                "Required. Expected string, received undefined",
            )
            refusal = api_error(
                400,
                f"{QUERY_INVALID} {summary([issue])}",
                path,
                extra={"errors": [issue.to_json()]},
            )
            return await self._deliver(request, refusal, mishap)
        poll = self._polls[generation_id]
        self._polls[generation_id] += 1
        subject = f"{generation_id}#{poll}"
        if met is None:
            mishap = self._random_mishap("fetch", subject)
        injected = self._injected("fetch", subject, path)
        if injected is not None:
            return await self._deliver(request, injected, mishap)

        self.scheduler.advance()
        job = self.scheduler.find(generation_id)
        if job is None:
            missing = api_error(404, f"Generation with id '{generation_id}' was not found", path)
            return await self._deliver(request, missing, mishap)
        answer = _describe(
            job,
            status=self._word(job, job.status, str(poll)),
            legacy=path != UNIVERSAL_PATH,
            base_url=str(request.base_url),
        )
        if job.status == "completed":
            # Video is charged once the generation is completed, and said so from then on.
            trace.credits = round(job.credits)
        return await self._deliver(request, JSONResponse(answer), mishap)

    async def logs(self, request: Request) -> Response:
        """``GET /v2/logs``: the key's requests in a window, newest first (see :mod:`i2v.emulator.usage_logs`)."""
        path = request.url.path
        self.stats.logs_requests += 1
        if not self._authorized(request):
            return api_error(401, None, path)
        wait = self._logs_window.take(time.monotonic())
        if wait > 0:
            return api_error(429, TOO_MANY_REQUESTS, path, retry_after=wait)
        try:
            query = parse_query(request.query_params.multi_items(), datetime.now(UTC))
        except QueryProblem as exc:
            return api_error(400, f"{QUERY_INVALID} {exc}", path)
        if query.key_prefix is not None and not owns_prefix(self.config.api_key, query.key_prefix):
            return api_error(404, f"No key with prefix '{query.key_prefix}' was found", path)
        # Jobs that have completed by now are charged by now.
        self.scheduler.advance()
        return JSONResponse(self.usage_log.page(query, time.monotonic()))

    async def metrics(self, request: Request) -> Response:
        """``GET /models/metrics``: no key; generation-time percentiles per model (see :mod:`i2v.emulator.metrics`)."""
        self.stats.metrics_requests += 1
        try:
            wanted = parse_aliases(request.query_params.multi_items())
        except MetricsQueryProblem as exc:
            return api_error(400, f"{QUERY_INVALID} {exc}", request.url.path)
        config = self.config
        served = (
            ServedModel(
                id=spec.api_id,
                aliases=tuple(alias for alias in spec.aliases if alias != spec.api_id),
                endpoint=spec.route().path,
                generation_seconds=config.generation_seconds_of(spec.api_id, spec.aliases),
                generation_jitter=config.generation_jitter,
            )
            for spec in MODELS.values()
        )
        # Only successful requests are measured: a service where every job fails has no figures.
        succeeds = config.job_error_rate + config.terminal_status_rate < 1
        return JSONResponse(metrics_answer(served, wanted, succeeds=succeeds))

    async def catalogue(self, request: Request) -> Response:
        """``GET /v1/models`` and ``GET /model/{id}``: no key; the catalogue (see :mod:`i2v.emulator.catalogue`)."""
        self.stats.catalogue_requests += 1
        query = request.query_params.multi_items()
        name = request.path_params.get("id")
        if name is None:
            document = catalogue.listing(query)
        else:
            found = catalogue.one(name, query)
            if found is None:
                return api_error(404, f"Model '{name}' was not found", request.url.path)
            document = found
        tag = catalogue.etag(document)
        if catalogue.matches(request.headers.get("if-none-match", ""), tag):
            return Response(status_code=304, headers={"ETag": tag})
        return JSONResponse(document, headers={"ETag": tag})

    # --- emulator endpoints -------------------------------------------------------------

    async def download(self, request: Request) -> Response:
        self.stats.downloads += 1
        met = self.faults.meet("download")
        mishap: Mishap | None = None
        if met is not None:
            struck = await self._strike(
                request,
                met,
                lambda fault: storage_error(fault.answer_status, retry_after=fault.retry_after),
            )
            if isinstance(struck, Response):
                return struck
            mishap = struck
        name: str = request.path_params["name"]
        job = self.scheduler.by_token(name.removesuffix(".mp4"))
        if job is None:
            return await self._deliver(request, storage_error(404), mishap)
        attempt = self._downloads[job.id]
        self._downloads[job.id] += 1
        if met is None:
            mishap = self._random_mishap("download", f"{job.id}#{attempt}")
        if self.scheduler.expired(job):
            return await self._deliver(request, storage_error(403, message="Request has expired"), mishap)
        if job.file is None:
            return await self._deliver(request, storage_error(404), mishap)
        # Stat now, not when sending: the file may be gone after a long hold, and a
        # given stat spares the response a trip to a worker thread.
        stat = job.file.stat()
        answer = FileResponse(job.file, media_type="video/mp4", stat_result=stat)
        delivered = await self._deliver(request, answer, mishap)
        if delivered is answer:
            self.stats.note_download(stat.st_size)
        return delivered

    async def stats_endpoint(self, request: Request) -> Response:
        scheduler = self.scheduler
        scheduler.advance()
        data = self.stats.to_json()
        data.update(
            jobs=scheduler.counts(),
            jobs_total=scheduler.total,
            max_generating_seen=scheduler.max_generating_seen,
            credits_remaining=self.credits_left,
            faults_pending=self.faults.pending(),
        )
        return JSONResponse(data)

    async def add_faults(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            items = data if isinstance(data, list) else [data]
            faults = [Fault.from_json(item) for item in items]
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.faults.extend(faults)
        return JSONResponse({"queued": len(faults), "pending": self.faults.pending()})

    # --- helpers ------------------------------------------------------------------------

    def _admit(self, request: Request) -> Response | None:
        """The checks every API request passes first: the key, then the request rate."""
        path = request.url.path
        if not self._authorized(request):
            return api_error(401, None, path)
        if self._bucket is not None:
            wait = self._bucket.take(time.monotonic())
            if wait > 0:
                return api_error(429, TOO_MANY_REQUESTS, path, retry_after=wait)
        return None

    async def _strike(
        self,
        request: Request,
        queued: QueuedFault,
        refusal: Callable[[Fault], Response],
    ) -> Response | Mishap:
        """Spend a scripted fault met at the gate.

        Returns the answer that replaces the real one (``status``, ``timeout``), or the
        mishap that awaits the real one (``slow``, ``reset``, ``truncate``).
        """
        fault = self.faults.use(queued)
        self.stats.note_fault(fault.kind, scripted=True)
        if fault.kind == "status":
            return refusal(fault)
        if fault.kind == "timeout":
            held = Mishap(delay=fault.seconds or TIMEOUT_SECONDS)
            return await self._deliver(request, refusal(fault), held)
        if fault.kind == "slow":
            return Mishap(delay=fault.seconds or self.config.slow_response_seconds)
        return Mishap(cut="close" if fault.kind == "truncate" else "reset")

    def _random_mishap(self, what: FaultTarget, subject: str) -> Mishap | None:
        """What the seed does to this answer on its way out, if anything."""
        if not self._mishaps:
            return None
        config = self.config
        seed = config.seed
        delay = 0.0
        cut: Cut | None = None
        if chance.happens(seed, f"{what}.slow", subject, config.slow_response_rate):
            delay = config.slow_response_seconds
            self.stats.note_fault("slow")
        if chance.happens(seed, f"{what}.reset", subject, config.connection_reset_rate):
            cut = "reset"
            self.stats.note_fault("reset")
        elif what == "download" and chance.happens(seed, "download.truncate", subject, config.truncated_download_rate):
            cut = "close"
            self.stats.note_fault("truncate")
        if delay or cut is not None:
            return Mishap(delay=delay, cut=cut)
        return None

    async def _deliver(
        self,
        request: Request,
        answer: Response,
        mishap: Mishap | None,
        *,
        job_made: bool = False,
    ) -> Response:
        """``answer`` as ``mishap`` leaves it; ``job_made``: it carries a new job's id."""
        if mishap is None:
            return answer
        if mishap.delay > 0 and not await hold(request.receive, mishap.delay):
            self.stats.client_hangups += 1
            if job_made:
                self.stats.lost_responses += 1
            return Unsent(answer)
        if mishap.cut is not None:
            if job_made:
                self.stats.lost_responses += 1
            return CutAnswer(answer, mishap.cut, self.connections)
        return answer

    def _trace(self, request: Request, trace: Trace, answer: Response, *, creating: bool) -> None:
        """Put the tracing headers on ``answer`` and, for a request made with the key, its log row."""
        # The answer as decided, before anything broke it on the way out.
        decided = answer
        if isinstance(answer, CutAnswer):
            decided = answer.answer
        elif isinstance(answer, Unsent):
            decided = answer.instead_of
        failed = decided.status_code >= 400
        job = trace.job
        inference_id: str | None
        if creating:
            # A lost answer (an error after the job was made) carries no trace of the job.
            inference_id = job.id if job is not None and not failed else new_inference_id()
            listed_id = job.id if job is not None else inference_id
            succeeded = job is not None
            model = trace.model or ""
        else:
            generation_id = request.query_params.get("generation_id", "").strip()
            inference_id = generation_id if looks_issued(generation_id) else None
            # The row needs an id even where the answer has none.
            listed_id = inference_id or new_inference_id()
            succeeded = not failed
            polled = self.scheduler.find(generation_id) if generation_id else None
            model = polled.model if polled is not None else ""
        add_tracing(
            decided,
            inference_id=inference_id,
            client_request_id=trace.client_request_id,
            credits=0 if failed else trace.credits,
        )
        if not self._authorized(request):
            # No key, no account to list the request under.
            return
        self.usage_log.add(
            LogRow(
                created=trace.created,
                visible_at=trace.arrived + self.config.logs_delay_seconds,
                status="succeeded" if succeeded else "failed",
                model=model,
                request_id=_request_id(decided),
                inference_id=listed_id,
                client_request_id=trace.client_request_id,
                charged_job=job if creating else None,
            )
        )

    def _created(self, job: Job) -> Response:
        """The answer to the create that made ``job``."""
        return JSONResponse({"id": job.id, "status": self._word(job, "queued", "create")}, status_code=201)

    def _word(self, job: Job, status: str, answer: str) -> str:
        """The status word of one answer about ``job`` (``answer`` names which one)."""
        if not self.config.status_variants:
            return status
        word = reported_status(status, self.config.seed, f"{job.id}#{answer}")
        if word != status:
            self.stats.note_fault("status_variant")
        return word

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            token.strip().encode(), self.config.api_key.encode()
        )

    def _injected(self, what: str, subject: str, path: str) -> Response | None:
        """A random 429 or 5xx, decided by the seed and ``subject`` alone."""
        seed = self.config.seed
        if chance.happens(seed, f"{what}.rate_limit", subject, self.config.rate_limit_rate):
            self.stats.note_fault("rate_limit")
            return api_error(429, TOO_MANY_REQUESTS, path, retry_after=1)
        if chance.happens(seed, f"{what}.server_error", subject, self.config.server_error_rate):
            self.stats.note_fault("server_error")
            status = chance.pick(seed, f"{what}.server_error.status", subject, (500, 502, 503))
            return api_error(status, None, path)
        return None

    def _new_job(self, route: ModelRoute, values: dict[str, Any], attempt: str) -> Job:
        config = self.config
        seconds = _whole_seconds(_asked(route, values, DURATION_FIELDS))
        short_side, aspect_ratio = asked_frame(
            _asked(route, values, RESOLUTION_FIELDS), _asked(route, values, ASPECT_FIELDS)
        )
        resolution = None if short_side is None else f"{short_side}p"
        sound = values.get("generate_audio", _default(route, "generate_audio"))
        spec = lookup(values["model"])
        aliases = spec.aliases if spec is not None else ()
        base_seconds = config.generation_seconds_of(values["model"], aliases)
        jitter = config.generation_jitter * (2 * chance.uniform(config.seed, "jitter", attempt) - 1)
        doomed = None
        if self._blocked is not None and self._blocked.search(values.get("prompt", "")):
            doomed = _MODERATION
        elif chance.happens(config.seed, "job.error", attempt, config.job_error_rate):
            doomed = _INJECTED_JOB_ERROR
            self.stats.note_fault("job_error")
        elif chance.happens(config.seed, "job.terminal_status", attempt, config.terminal_status_rate):
            word = chance.pick(config.seed, "job.terminal_status.word", attempt, TERMINAL_WORDS)
            doomed = TERMINAL_FAILURES[word]
            self.stats.note_fault("terminal_status")
        rendered_seconds, rendered_aspect = int(seconds), None if aspect_ratio is None else str(aspect_ratio)
        if doomed is None and chance.happens(config.seed, "job.off_spec", attempt, config.off_spec_rate):
            rendered_seconds, rendered_aspect = _off_spec(rendered_seconds, rendered_aspect)
            self.stats.note_fault("off_spec")
        return Job(
            id=chance.derived_uuid(config.seed, "generation_id", attempt),
            model=values["model"],
            spec=RenderSpec(
                image_url=_first_image(values.get(route.image_field)),
                seconds=rendered_seconds,
                aspect_ratio=rendered_aspect,
                # Same request, same video: the seed only varies with the body itself.
                seed=chance.integer(config.seed, "render", chance.canonical(values)),
                audio="audio_url" in values or sound is True,
                short_side=config.short_side or short_side or ASKED_FALLBACK_SHORT_SIDE,
            ),
            credits=price(resolution, int(seconds), model=spec.api_id if spec is not None else values["model"]),
            generation_seconds=base_seconds * (1 + jitter),
            doomed=doomed,
            url_ttl_seconds=None if spec is None else spec.url_ttl_seconds,
        )


def _render_pool(processes: int) -> Executor:
    if not processes:
        return ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="i2v-emulator-render")
    # Spawned, not forked: the server runs threads, and a fork would copy their locks.
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(processes):
        # Start the workers (and their imports) now rather than under the first job.
        pool.submit(warm_up)
    return pool


def _off_spec(seconds: int, aspect_ratio: str | None) -> tuple[int, str | None]:
    """The duration and aspect ratio of a video that misses its request."""
    return max(1, seconds // 2), None if aspect_ratio is None else _OTHER_ORIENTATION.get(aspect_ratio, "1:1")


def _whole_seconds(value: Any) -> int:
    """A duration as the model's schema spells it (10, "10", "5s"), in whole seconds."""
    digits = str(value or "").strip().rstrip("s")
    try:
        return max(1, round(float(digits)))
    except ValueError:
        return DEFAULT_SECONDS


def _first_image(value: Any) -> str | None:
    """The image a video starts from: the field's value, or the first of a list."""
    if isinstance(value, list):
        return value[0] if value else None
    return value if isinstance(value, str) else None


def _asked(route: ModelRoute, values: dict[str, Any], names: tuple[str, ...]) -> Any:
    """The value of the first of ``names`` the route has: as sent, else its default."""
    for name in names:
        if name in route.params:
            return values.get(name, _default(route, name))
    return None


def _default(route: ModelRoute, name: str) -> Any:
    param = route.params.get(name)
    return None if param is None else param.default


def _describe(job: Job, *, status: str, legacy: bool, base_url: str) -> dict[str, Any]:
    """The fetch answer, ``status`` the word it uses for the job's state.

    The legacy path still speaks the older schema.
    """
    video: dict[str, Any] | None = None
    if job.status == "completed" and job.token is not None:
        video = {"url": f"{base_url.rstrip('/')}{FILES_PREFIX}{job.token}.mp4"}
        if legacy:
            video["duration"] = job.spec.seconds
    error = {"name": job.failure.name, "message": job.failure.message} if job.failure else None
    usage_key = "tokens_used" if legacy else "credits_used"
    meta = {"usage": {usage_key: job.credits}} if job.is_terminal else None
    answer: dict[str, Any] = {"id": job.id, "status": status, "video": video, "error": error}
    if legacy:
        answer["duration"] = job.spec.seconds if video is not None else None
    answer["meta"] = meta
    return answer


def _model_of(body: Any) -> str:
    """The model a create body names, or ``""``."""
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


def _named_model(raw: bytes) -> str:
    """The model a raw create body names, or ``""``."""
    try:
        return _model_of(json.loads(raw))
    except ValueError:
        return ""


def _request_id(answer: Response) -> str:
    """The id of one HTTP call: an error answer's own ``requestId``, else a fresh one."""
    if answer.status_code >= 400 and isinstance(answer, JSONResponse):
        try:
            body = json.loads(bytes(answer.body))
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("requestId"), str):
            return str(body["requestId"])
    return str(uuid.uuid4())


def _invalid_body(issues: list[Issue], path: str) -> Response:
    return api_error(
        400,
        f"{BODY_INVALID} {summary(issues)}",
        path,
        extra={"errors": [issue.to_json() for issue in issues]},
    )


def _fault_answer(fault: Fault, path: str) -> Response:
    status = fault.answer_status
    message = OUT_OF_CREDITS if status == 403 else None
    return api_error(status, message, path, retry_after=fault.retry_after)


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Cannot {request.method} {request.url.path}" if status in (404, 405) else None
    return api_error(status, message, request.url.path)


class _CountResponses:
    """Counts answers by status, leaving out the emulator's own stats and admin calls."""

    def __init__(self, app: ASGIApp, counter: Counter[int]) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        own = path.startswith("/_emulator/") and not path.startswith(FILES_PREFIX)
        if scope["type"] != "http" or own:
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counter[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting_send)
