"""What a run is: its settings, as plain data that can travel to another worker.

A :class:`RunSpec` is everything a shard needs to do its part of a run, here or in a
child flow run on another machine. It holds no secret: the API key and clients come
from each process's own environment.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from i2v.api.downloads import DownloadRules
from i2v.api.models import DEFAULT_MODEL, RouteName
from i2v.errors import ConfigError, I2VError, InputError
from i2v.inputs.comparison import compared_models, split_models
from i2v.inputs.shards import InputPlan, Shard
from i2v.limits import Limits
from i2v.outcomes import RowOutcome

#: Rows per shard unless asked otherwise: a shard's rows and outcomes are held in memory
#: while it runs, and it is the unit a Prefect flow run tracks.
DEFAULT_ROWS_PER_SHARD = 1000
#: Shards of one run in progress at once in a process; two keep the provider busy across
#: a shard's tail while bounding memory to two shards.
SHARDS_AT_ONCE = 2
#: Task runs each shard's rows are split into (each costs Prefect ~30 ms of CPU).
TASKS_PER_SHARD = 16
DEFAULT_MAX_IN_FLIGHT = 16

_NAME = re.compile(r"[^A-Za-z0-9._-]+")

RetryPolicy = Literal["retryable", "all"]


@dataclass(frozen=True)
class RunSpec:
    """One run's settings: what to read, where to write, how to treat the provider."""

    name: str
    input: str
    dest: str
    model: str = DEFAULT_MODEL
    api_path: RouteName | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: A comparison: every row runs on each of these models (two or more; see :mod:`i2v.inputs.validation`).
    models: tuple[str, ...] = ()
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    poll_interval_s: float = 10.0
    job_timeout_s: float = 900.0
    rows_per_task: int | None = None
    #: Which failures of earlier runs to try again: ``retryable`` ones, or ``all``.
    retry: RetryPolicy = "retryable"
    resubmit_unknown: bool = False
    #: How long after a create its absence from the provider's usage logs means it never arrived.
    unknown_grace_s: float = 900.0
    max_failure_ratio: float | None = None
    max_credits: float | None = None
    limits: Limits = field(default_factory=Limits)
    #: ``csv``, ``jsonl`` or ``parquet``; None: from the input's extension.
    input_format: str | None = None
    #: The input's own names for our columns: theirs → ours (``{"img": "image_url"}``).
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be at least 1, got {self.max_in_flight}")
        if self.poll_interval_s <= 0:
            raise ConfigError(f"poll_interval_s must be positive, got {self.poll_interval_s}")
        if self.job_timeout_s <= 0:
            raise ConfigError(f"job_timeout_s must be positive, got {self.job_timeout_s}")
        if self.rows_per_task is not None and self.rows_per_task < 1:
            raise ConfigError(f"rows_per_task must be at least 1, got {self.rows_per_task}")
        if self.max_failure_ratio is not None and not 0 <= self.max_failure_ratio <= 1:
            raise ConfigError(f"max_failure_ratio must be between 0 and 1, got {self.max_failure_ratio}")
        if self.max_credits is not None and self.max_credits < 0:
            raise ConfigError(f"max_credits must not be negative, got {self.max_credits}")
        if self.unknown_grace_s < 0:
            raise ConfigError(f"unknown_grace_s must not be negative, got {self.unknown_grace_s}")
        if self.retry not in ("retryable", "all"):
            raise ConfigError(f"retry must be 'retryable' or 'all', got {self.retry!r}")
        try:
            compared_models(self.models)
        except InputError as exc:
            raise ConfigError(f"models: {exc.reason}") from None

    def outcomes(self, part: Shard | InputPlan) -> int:
        """Manifest rows a run of an input (or a shard of it) makes: one per (row, model) in a comparison.

        A row's own ``models`` cell counts for it in place of the run's ``--models``.
        """
        return part.outcomes(max(1, len(compared_models(self.models))))

    def batch_size(self, shard_rows: int) -> int:
        """Rows per task run for a shard: one for small shards, so few task runs for large ones."""
        if self.rows_per_task is not None:
            return self.rows_per_task
        return max(1, math.ceil(shard_rows / TASKS_PER_SHARD))


@dataclass(frozen=True)
class RunSettings:
    """How a run treats its input, as every flow that runs an input takes it: one place for every setting.

    Flows take these as flat parameters (``-p max_credits=1000``), see
    :func:`flows.parameters.takes_run_settings`; :meth:`spec` turns them into the run's
    :class:`RunSpec`, which checks every value once.
    """

    model: str = DEFAULT_MODEL
    #: Models to compare: every row runs on each (``["a", "b"]``, or ``"a,b"`` as the command line gives it).
    models: list[str] | None = None
    api_path: RouteName | None = None
    resolution: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    enhance_prompt: bool | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    poll_interval_s: float = 10.0
    job_timeout_s: float = 900.0
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    rows_per_task: int | None = None
    retry: RetryPolicy = "retryable"
    resubmit_unknown: bool = False
    unknown_grace_s: float = 900.0
    max_failure_ratio: float | None = None
    max_credits: float | None = None
    limits: Limits | None = None
    input_format: Literal["csv", "jsonl", "parquet"] | None = None
    #: The input's own names for our columns: theirs → ours (``{"img": "image_url"}``).
    columns: dict[str, str] | None = None
    run_name: str | None = None

    def __post_init__(self) -> None:
        if self.rows_per_shard < 1:
            raise ConfigError(f"rows_per_shard must be at least 1, got {self.rows_per_shard}")
        self.spec(name="check", input="", dest="")

    def parameters(self) -> dict[str, Any]:
        """The settings by name, as a flow taking them is called."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def spec(self, *, name: str, input: str, dest: str) -> RunSpec:
        """The run's spec under ``name``; raises :class:`ConfigError` for a value out of range."""
        return RunSpec(
            name=name,
            input=input,
            dest=dest,
            model=self.model,
            models=tuple(name for item in self.models or () for name in split_models(item)),
            api_path=self.api_path,
            defaults=given(
                resolution=self.resolution,
                duration=self.duration,
                aspect_ratio=self.aspect_ratio,
                negative_prompt=self.negative_prompt,
                seed=self.seed,
                enhance_prompt=self.enhance_prompt,
            ),
            max_in_flight=self.max_in_flight,
            poll_interval_s=self.poll_interval_s,
            job_timeout_s=self.job_timeout_s,
            rows_per_task=self.rows_per_task,
            retry=self.retry,
            resubmit_unknown=self.resubmit_unknown,
            unknown_grace_s=self.unknown_grace_s,
            max_failure_ratio=self.max_failure_ratio,
            max_credits=self.max_credits,
            limits=self.limits or Limits(),
            input_format=self.input_format,
            columns=dict(self.columns or {}),
        )


def given(**values: Any) -> dict[str, Any]:
    """The values that were given: a flow's optional row defaults, without the Nones."""
    return {name: value for name, value in values.items() if value is not None}


def run_name(label: str | None, *, now: float | None = None) -> str:
    """A run's folder name under ``runs/``: a UTC timestamp and a label, safe as a key.

    The timestamp comes first, so runs sort by when they started.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{safe_label(label)}"


def safe_label(label: str | None) -> str:
    """``label`` reduced to letters, digits, '.', '_' and '-' (a run name given by a caller)."""
    return (_NAME.sub("-", label or "local").strip("-.") or "local")[:60]


def batches(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` cut into consecutive lists of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


class RowsUnfinished(I2VError):
    """Some rows of a batch failed on something transient; trying the batch again may finish them."""

    kind = "unfinished"
    retryable = True

    def __init__(self, outcomes: Sequence[RowOutcome]) -> None:
        first = outcomes[0]
        super().__init__(
            f"{len(outcomes)} row(s) unfinished, first row {first.row_index}: {first.error_kind}: {first.error_message}"
        )
        self.outcomes = list(outcomes)


@dataclass(frozen=True)
class EngineOptions:
    """How one run treats its rows."""

    run: str
    job_timeout_s: float = 900.0
    #: Videos being downloaded at once (each holds at most a part buffer and a spool file).
    max_transfers: int = 8
    #: Which failures of earlier runs a run tries again: those that may pass another
    #: time, or every one (a content-moderation verdict too).
    retry: RetryPolicy = "retryable"
    #: Send again a create whose earlier outcome is unknown (it may be paid twice).
    resubmit_unknown: bool = False
    max_failure_ratio: float | None = None
    max_credits: float | None = None
    #: Which video URLs are followed and how large a video may be.
    downloads: DownloadRules = field(default_factory=DownloadRules)
    #: How long after a create its absence from the provider's usage logs means it never
    #: arrived (the logs may lag; see :mod:`i2v.engine.unknown_creates`).
    unknown_grace_s: float = 900.0
