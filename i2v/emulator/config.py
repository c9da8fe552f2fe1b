"""How an emulator instance behaves: timing, limits, billing and the failures it injects."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

FaultTarget = Literal["create", "fetch", "download"]
FAULT_TARGETS: tuple[FaultTarget, ...] = get_args(FaultTarget)
FaultKind = Literal["status", "timeout", "reset", "slow", "truncate"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

#: What a ``timeout`` fault answers if the client is still there when the hold ends.
TIMEOUT_STATUS = 504
#: How long a ``timeout`` fault holds its answer unless told: past any sensible client
#: timeout. The hold ends as soon as the client hangs up, so a long one costs nothing.
TIMEOUT_SECONDS = 120.0

_FAULT_FIELDS = frozenset({"on", "kind", "status", "retry_after", "count", "nth", "after_create", "seconds"})
#: Kinds that answer an error status of their own.
_ANSWERING_KINDS = ("status", "timeout")
#: Kinds that can strike a create after its job is made.
_AFTER_CREATE_KINDS = ("status", "timeout", "reset")


@dataclass(frozen=True)
class Fault:
    """A scripted failure of requests to ``on`` (``create``, ``fetch`` or ``download``).

    It strikes ``count`` requests in a row, starting with the ``nth`` request to ``on``
    counted from when it was queued (``nth=3`` lets two through first). Creates and
    fetches are counted once they pass the key and request-rate checks. One fault
    strikes a request at most: when two fall due on the same one, the one queued first
    strikes and the other waits for the next request.

    ``kind`` says what happens:

    * ``status``: the answer is the error ``status`` (with ``Retry-After`` when
      ``retry_after`` is set).
    * ``timeout``: the answer is held ``seconds`` (default :data:`TIMEOUT_SECONDS`, long
      enough for a client to give up), then, to a client still waiting, the error
      ``status`` (default 504). The hold ends early if the client hangs up.
    * ``reset``: the status line, headers and half the body are sent, then the
      connection is reset (TCP RST). A fetch or download has its real answer cut; a
      create is cut in a 502 from the gateway, its job never made.
    * ``slow``: the request is handled at once, its real answer held ``seconds``
      (default: the configuration's ``slow_response_seconds``).
    * ``truncate`` (downloads only): the real answer declares its full
      ``Content-Length``, sends half of it, then closes the connection cleanly (FIN), so
      only a client that checks the length notices.

    ``after_create`` (creates; kinds ``status``, ``timeout`` and ``reset``) lets the
    create make and bill its job first, and only then breaks the answer: the response
    is lost but the work is not, which is what makes a blind retry of a create pay
    twice. Such a fault waits for a create that makes a job (one refused in validation
    passes it by).
    """

    on: FaultTarget
    status: int | None = None
    retry_after: float | None = None
    count: int = 1
    after_create: bool = False
    kind: FaultKind = "status"
    nth: int = 1
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.on not in FAULT_TARGETS:
            targets = ", ".join(FAULT_TARGETS)
            raise ValueError(f"fault 'on' must be one of {targets}, got {self.on!r}")
        if self.kind not in FAULT_KINDS:
            kinds = ", ".join(FAULT_KINDS)
            raise ValueError(f"fault kind must be one of {kinds}, got {self.kind!r}")
        if self.kind == "status" and self.status is None:
            raise ValueError("a fault of kind 'status' needs a status")
        if self.status is not None:
            if self.kind not in _ANSWERING_KINDS:
                raise ValueError(f"a fault of kind {self.kind!r} takes no status")
            if not 400 <= self.status <= 599:
                raise ValueError(f"fault status must be an error status (400-599), got {self.status}")
        if self.retry_after is not None:
            if self.kind not in _ANSWERING_KINDS:
                raise ValueError(f"a fault of kind {self.kind!r} takes no retry_after")
            if not 0 <= self.retry_after < math.inf:
                raise ValueError(f"fault retry_after must be a finite number >= 0, got {self.retry_after}")
        if self.count < 1:
            raise ValueError(f"fault count must be at least 1, got {self.count}")
        if self.nth < 1:
            raise ValueError(f"fault nth must be at least 1, got {self.nth}")
        if self.seconds is not None:
            if self.kind not in ("timeout", "slow"):
                raise ValueError(f"a fault of kind {self.kind!r} takes no seconds")
            if not 0 < self.seconds < math.inf:
                raise ValueError(f"fault seconds must be a positive finite number, got {self.seconds}")
        if self.kind == "truncate" and self.on != "download":
            raise ValueError("truncate only applies to faults on 'download'")
        if self.after_create:
            if self.on != "create":
                raise ValueError("after_create only applies to faults on 'create'")
            if self.kind not in _AFTER_CREATE_KINDS:
                raise ValueError(f"after_create does not apply to faults of kind {self.kind!r}")

    @property
    def answer_status(self) -> int:
        """The error status this fault answers (``status`` and ``timeout`` kinds)."""
        return self.status if self.status is not None else TIMEOUT_STATUS

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """A fault from its JSON form (the admin endpoint's list items); null means default."""
        if not isinstance(data, dict):
            raise ValueError(f"a fault must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - _FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "on" not in data:
            raise ValueError("a fault needs 'on'")
        kind = data.get("kind")
        status = _optional(data, "status", int)
        retry_after = _optional(data, "retry_after", float)
        seconds = _optional(data, "seconds", float)
        count = _optional(data, "count", int)
        nth = _optional(data, "nth", int)
        return cls(
            on=data["on"],
            kind="status" if kind is None else kind,
            status=status,
            retry_after=None if retry_after is None else float(retry_after),
            count=1 if count is None else count,
            nth=1 if nth is None else nth,
            after_create=_optional(data, "after_create", bool) is True,
            seconds=None if seconds is None else float(seconds),
        )


def _optional(data: dict[str, Any], name: str, kind: type) -> Any:
    """``data[name]`` checked to be of ``kind`` (a float may be any number), or ``None``."""
    value = data.get(name)
    if value is None:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok:
        noun = {bool: "a boolean", float: "a number", int: "an integer"}.get(kind, kind.__name__)
        raise ValueError(f"fault {name} must be {noun}, got {value!r}")
    return value


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything an emulator instance needs; the defaults behave like a calm real service.

    Random failure rates are probabilities per decision. Each decision is drawn from a
    hash of ``seed``, what is being decided and a stable subject (see
    :mod:`i2v.emulator.chance`), so a run replays identically whatever order its
    requests arrive in.
    """

    api_key: str
    #: Time a job spends ``generating``, varied by ``generation_jitter`` (a fraction).
    generation_seconds: float = 3.0
    generation_jitter: float = 0.2
    #: Per-model generation times, (model id or alias, seconds) pairs: real models take
    #: from seconds to minutes. A model not named takes ``generation_seconds``. Both the
    #: jobs and ``GET /models/metrics`` follow them.
    model_generation_seconds: tuple[tuple[str, float], ...] = ()
    #: Jobs generating at once; the rest wait ``queued``, first in first out.
    max_concurrent: int = 4
    #: Queued plus generating jobs allowed; a create beyond it answers 429.
    max_pending: int | None = None
    #: Token bucket over every API request; beyond it requests answer 429.
    requests_per_second: float | None = None
    job_error_rate: float = 0.0
    #: Jobs that end in ``failed``, ``cancelled`` or ``expired`` (one picked per job)
    #: rather than ``error``; billed like any failed job (see :mod:`i2v.emulator.statuses`).
    terminal_status_rate: float = 0.0
    #: Answer with the other words the vendor uses for a running job: ``waiting`` for
    #: ``queued``; ``active`` or ``processing`` for ``generating`` (picked per answer).
    status_variants: bool = False
    rate_limit_rate: float = 0.0
    server_error_rate: float = 0.0
    #: Creates that make (and bill) the job, then answer 502 as if the response was lost.
    lost_response_rate: float = 0.0
    #: API answers and downloads held ``slow_response_seconds`` before being sent.
    slow_response_rate: float = 0.0
    slow_response_seconds: float = 5.0
    #: API answers and downloads cut mid-body by a connection reset. A create so cut has
    #: made (and billed) its job if its answer was a success.
    connection_reset_rate: float = 0.0
    #: Downloads that declare their full length, send half of it and close the connection.
    truncated_download_rate: float = 0.0
    #: Jobs that complete with a video other than asked, as real models sometimes do: half
    #: the asked duration (at least 1 s) and, where an aspect ratio was asked, the other
    #: orientation (``1:1`` becomes ``16:9``). Billed as asked.
    off_spec_rate: float = 0.0
    #: Words (whole, case-insensitive) whose presence in a prompt fails the job in moderation.
    blocked_terms: tuple[str, ...] = ("forbidden",)
    #: Account balance; ``None`` is unlimited.
    credits: float | None = None
    #: Download URLs stop working this long after the job completes, for models whose
    #: vendor documentation states no lifetime; the others keep theirs (the catalogue's
    #: ``url_ttl_seconds``: ten minutes for some, a day for others).
    url_ttl_seconds: float = 600.0
    #: Rendered videos are scaled down to this short side and frame rate to keep rendering
    #: cheap; aspect ratio and duration are honoured exactly (unless ``off_spec_rate``).
    #: ``None`` renders at the asked resolution's short side (480p: 480 pixels), as the
    #: real service does; a scaled-down video is smaller than asked, and the pipeline's
    #: manifest says so in its ``mismatch`` column.
    short_side: int | None = 144
    fps: int = 8
    #: Worker processes that render videos; 0 renders in two threads of the server's own
    #: process (quick to start, for an emulator inside a test). With processes, encoding
    #: never holds the server's interpreter lock, so answers keep a real service's latency
    #: while a wave of videos is made.
    render_processes: int = 0
    seed: int = 0
    #: How long after its request a row shows up in ``GET /v2/logs``: the vendor fills
    #: that listing from an analytics pipeline, so a client cannot count on a row being
    #: there the moment its answer arrives. 0 lists rows at once.
    logs_delay_seconds: float = 1.0
    #: Where MP4s are written; a temporary folder (removed at shutdown) when ``None``.
    work_dir: Path | None = None
    faults: tuple[Fault, ...] = ()

    def generation_seconds_of(self, model: str, aliases: tuple[str, ...] = ()) -> float:
        """Seconds a job of ``model`` (known also as ``aliases``) generates, before jitter."""
        names = {model, *aliases}
        return next((s for name, s in self.model_generation_seconds if name in names), self.generation_seconds)

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.generation_seconds < 0:
            raise ValueError("generation_seconds must not be negative")
        for model, seconds in self.model_generation_seconds:
            if not 0 <= seconds < math.inf:
                raise ValueError(f"generation seconds of {model} must be a finite number, at least 0")
        if not 0 <= self.generation_jitter < 1:
            raise ValueError("generation_jitter must be in [0, 1)")
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if self.max_pending is not None and self.max_pending < 1:
            raise ValueError("max_pending must be at least 1 (or None for no limit)")
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive (or None for no limit)")
        for name in (
            "job_error_rate",
            "terminal_status_rate",
            "rate_limit_rate",
            "server_error_rate",
            "lost_response_rate",
            "slow_response_rate",
            "connection_reset_rate",
            "truncated_download_rate",
            "off_spec_rate",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        if not 0 < self.slow_response_seconds < math.inf:
            raise ValueError("slow_response_seconds must be a positive number of seconds")
        if self.url_ttl_seconds <= 0:
            raise ValueError("url_ttl_seconds must be positive")
        if self.short_side is not None and (self.short_side < 16 or self.short_side % 2):
            raise ValueError("short_side must be an even number of at least 16 pixels")
        if self.render_processes < 0:
            raise ValueError("render_processes must not be negative")
        if self.fps < 1:
            raise ValueError("fps must be at least 1")
        if not 0 <= self.logs_delay_seconds < math.inf:
            raise ValueError("logs_delay_seconds must be a finite number of seconds, at least 0")
