"""Process-wide resources, built from the environment: the edge where settings enter.

Tasks receive only plain data (rows, shards, the run's spec). The API key, the clients
that carry it and the run's engine stay here, so they never become task or flow
parameters and never reach Prefect's database. One :class:`~i2v.engine.runner.Engine` serves
each run in a process: every shard and batch of the run shares its admission limiter,
poll pacer, HTTP client and thread pool. It lives while anything of the run holds it
(the parent flow, or a shard running as its own flow run on another worker).

While a run holds its engine, SIGTERM halts it instead of ending the process: that is
how a worker cancels a flow run (and how a container is stopped), with a grace period
before SIGKILL in which the run writes its manifest. A second SIGTERM goes on to the
handler that was there before (Prefect's: the flow run ends at once).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from i2v.api.client import VideoApi, make_http_client
from i2v.api.downloads import DownloadRules
from i2v.api.settings import ApiSettings
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.offload import Offload
from i2v.engine.pacing import PollPacer
from i2v.engine.progress import Progress, Snapshot
from i2v.engine.runner import Engine
from i2v.engine.spec import EngineOptions, RunSpec
from i2v.inputs.sources import Opener, is_s3, opener_for, presigner
from i2v.storage.destination import Destination
from i2v.storage.from_uri import open_destination
from i2v.storage.s3_client import endpoint_from_env, make_client
from orchestration import secrets
from orchestration import shared_slots as slots

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_lock = threading.RLock()
_destinations: dict[tuple[str, str], Destination] = {}
_s3_clients: dict[str, S3Client] = {}


@dataclass
class _Held:
    engine: Engine
    holders: int


_engines: dict[str, _Held] = {}
#: Set by :func:`halt_all`: engines built afterwards halt at once.
_halted: str | None = None
#: Why a run halted on SIGTERM: its flow run may have been cancelled.
TERMINATED = "stopped by SIGTERM"
#: The SIGTERM handler in place before the first engine of this process caught it.
_sigterm_before: Any = None
_catching_sigterm = False


def destination(uri: str) -> Destination:
    """The destination for ``uri``; S3 clients come from the usual AWS settings."""
    endpoint = endpoint_from_env()
    with _lock:
        dest = _destinations.get((uri, endpoint))
        if dest is None:
            dest = open_destination(uri, s3_client=s3_client() if uri.startswith("s3://") else None)
            _destinations[(uri, endpoint)] = dest
        return dest


def s3_client() -> S3Client:
    """This process's S3 client for the endpoint the environment names (one per endpoint)."""
    endpoint = endpoint_from_env()
    with _lock:
        client = _s3_clients.get(endpoint)
        if client is None:
            client = _s3_clients[endpoint] = make_client(endpoint)
        return client


def opener(uri: str) -> Opener:
    """How to open the input ``uri``: a local file, or an S3 object through this process's client."""
    return opener_for(uri, s3_client() if is_s3(uri) else None)


@asynccontextmanager
async def engine(run: RunSpec, *, progress: Progress | None = None) -> AsyncIterator[Engine]:
    """The run's engine in this process, built by the first holder and closed by the last."""
    _catch_sigterm()
    held = _engines.get(run.name)
    if held is None:
        held = _Held(_build(run, progress or Progress()), 0)
        _engines[run.name] = held
        if _halted is not None:
            held.engine.halt(_halted)
    held.holders += 1
    try:
        yield held.engine
    finally:
        held.holders -= 1
        if held.holders == 0:
            del _engines[run.name]
            if not _engines:
                _release_sigterm()
            await held.engine.aclose()
            await slots.aclose(held.engine.limiter)


def running(run_name: str) -> Engine | None:
    """The engine of a run this process is working on, if any."""
    held = _engines.get(run_name)
    return held.engine if held is not None else None


def progress_reader(run_name: str) -> Callable[[], Snapshot | None]:
    """Reads the counts of a run of this process, from any thread: None until the run has its engine.

    The counts stay readable after the run has let go of its engine, so that a display's
    last frame has the last rows too.
    """
    found: list[Engine] = []

    def read() -> Snapshot | None:
        if not found:
            engine = running(run_name)
            if engine is None:
                return None
            found.append(engine)
        return found[0].progress.snapshot(in_flight=found[0].limiter.stats().in_flight)

    return read


def halt_all(reason: str) -> None:
    """Halt every run in this process (a signal arrived); safe to call from any thread."""
    global _halted
    _halted = reason
    for held in list(_engines.values()):
        held.engine.halt(reason)


def halted() -> str | None:
    """Why this process's runs were halted by a signal, if they were."""
    return _halted


def _catch_sigterm() -> None:
    """Make SIGTERM halt the runs; called by every holder of an engine.

    Every holder installs it again: each subflow's engine puts Prefect's own handler
    back for its duration.
    """
    global _sigterm_before, _catching_sigterm
    with suppress(ValueError):  # not the main thread: signals stay as they are
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm:
            return
        if not _catching_sigterm:
            _sigterm_before = current
        signal.signal(signal.SIGTERM, _on_sigterm)
        _catching_sigterm = True


def _release_sigterm() -> None:
    global _catching_sigterm
    if _catching_sigterm:
        with suppress(ValueError):
            signal.signal(signal.SIGTERM, _sigterm_before)
        _catching_sigterm = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _halted is None:
        halt_all(TERMINATED)
        return
    before = _sigterm_before if _catching_sigterm else None
    _release_sigterm()
    if callable(before):
        before(signum, frame)
    else:
        os.kill(os.getpid(), signum)


def reset() -> None:
    """Forget cached destinations (tests change the environment between runs)."""
    global _halted
    _halted = None
    with _lock:
        _destinations.clear()
        _s3_clients.clear()


def _build(run: RunSpec, progress: Progress) -> Engine:
    settings = ApiSettings.from_env(secrets.api_environment())
    options = EngineOptions(
        run=run.name,
        job_timeout_s=run.job_timeout_s,
        retry=run.retry,
        resubmit_unknown=run.resubmit_unknown,
        unknown_grace_s=run.unknown_grace_s,
        max_failure_ratio=run.max_failure_ratio,
        max_credits=run.max_credits,
        downloads=DownloadRules.for_api(settings.base_url, max_bytes=run.limits.max_video_bytes),
    )
    limiter = AdmissionLimiter(run.max_in_flight, gate=slots.from_env())
    return Engine(
        api=VideoApi(make_http_client(settings), settings.api_key),
        # A pool of its own, one connection per transfer: a slow download never holds up a poll.
        downloads=make_http_client(settings, max_connections=options.max_transfers),
        dest=destination(run.dest),
        limiter=limiter,
        # Jobs that may be done are looked at sooner while others wait for their slots.
        pacer=PollPacer(run.poll_interval_s, pressure=limiter.pressed),
        offload=Offload(),
        options=options,
        progress=progress,
        presign=_presign,
    )


def _presign(uri: str) -> str:
    # The client is made on first use: most runs have no s3:// images.
    return presigner(s3_client())(uri)
