"""How an emulator instance behaves: timing, limits, billing and the failures it injects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

FaultTarget = Literal["create", "fetch", "download"]
FAULT_TARGETS: tuple[FaultTarget, ...] = get_args(FaultTarget)


@dataclass(frozen=True)
class Fault:
    """A scripted failure: the next ``count`` requests of kind ``on`` answer ``status``.

    ``after_create`` (creates only) first creates and bills the job, then answers the
    error: the response is lost but the work is not, which is what makes a blind retry
    of a create pay twice.
    """

    on: FaultTarget
    status: int
    retry_after: float | None = None
    count: int = 1
    after_create: bool = False

    def __post_init__(self) -> None:
        if self.on not in FAULT_TARGETS:
            targets = ", ".join(FAULT_TARGETS)
            raise ValueError(f"fault 'on' must be one of {targets}, got {self.on!r}")
        if not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be an error status (400-599), got {self.status}")
        if self.count < 1:
            raise ValueError(f"fault count must be at least 1, got {self.count}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"fault retry_after must not be negative, got {self.retry_after}")
        if self.after_create and self.on != "create":
            raise ValueError("after_create only applies to faults on 'create'")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """A fault from its JSON form (the admin endpoint's list items)."""
        if not isinstance(data, dict):
            raise ValueError(f"a fault must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"on", "status", "retry_after", "count", "after_create"}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        try:
            on, status = data["on"], data["status"]
        except KeyError as exc:
            raise ValueError(f"a fault needs {exc.args[0]!r}") from None
        retry_after = data.get("retry_after")
        count = data.get("count", 1)
        after_create = data.get("after_create", False)
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError(f"fault status must be an integer, got {status!r}")
        if not isinstance(count, int) or isinstance(count, bool):
            raise ValueError(f"fault count must be an integer, got {count!r}")
        is_number = isinstance(retry_after, int | float) and not isinstance(retry_after, bool)
        if retry_after is not None and not is_number:
            raise ValueError(f"fault retry_after must be a number, got {retry_after!r}")
        if not isinstance(after_create, bool):
            raise ValueError(f"fault after_create must be a boolean, got {after_create!r}")
        return cls(
            on=on,
            status=status,
            retry_after=None if retry_after is None else float(retry_after),
            count=count,
            after_create=after_create,
        )


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
    #: Jobs generating at once; the rest wait ``queued``, first in first out.
    max_concurrent: int = 4
    #: Queued plus generating jobs allowed; a create beyond it answers 429.
    max_pending: int | None = None
    #: Token bucket over every API request; beyond it requests answer 429.
    requests_per_second: float | None = None
    job_error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    server_error_rate: float = 0.0
    #: Creates that make (and bill) the job, then answer 502 as if the response was lost.
    lost_response_rate: float = 0.0
    #: Words (whole, case-insensitive) whose presence in a prompt fails the job in moderation.
    blocked_terms: tuple[str, ...] = ("forbidden",)
    #: Account balance; ``None`` is unlimited.
    credits: float | None = None
    #: Download URLs stop working this long after the job completes.
    url_ttl_seconds: float = 600.0
    #: Rendered videos are scaled down to this short side and frame rate to keep rendering
    #: cheap; aspect ratio and duration are honoured exactly.
    short_side: int = 144
    fps: int = 8
    seed: int = 0
    #: Where MP4s are written; a temporary folder (removed at shutdown) when ``None``.
    work_dir: Path | None = None
    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.generation_seconds < 0:
            raise ValueError("generation_seconds must not be negative")
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
            "rate_limit_rate",
            "server_error_rate",
            "lost_response_rate",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        if self.url_ttl_seconds <= 0:
            raise ValueError("url_ttl_seconds must be positive")
        if self.short_side < 16 or self.short_side % 2:
            raise ValueError("short_side must be an even number of at least 16 pixels")
        if self.fps < 1:
            raise ValueError("fps must be at least 1")
