"""The bulk flow: CSV in; videos, manifest and report out. Orchestration only.

Each valid row becomes a chain of three task runs (submit → wait → store). At most
``max_in_flight`` chains run at once: that bounds the jobs queued at the API, the
threads in use, and the videos waiting to be downloaded. Results come back as row
outcomes; every input row gets exactly one, including rows that were invalid,
duplicated, already done, failed in any step, or never sent because the run stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

from prefect import State, flow, get_run_logger, runtime
from prefect.futures import PrefectFuture
from prefect.states import Failed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from i2v import outcomes
from i2v.errors import AuthError, ConfigError, I2VError, OutOfCredits
from i2v.models import DEFAULT_MODEL
from i2v.outcomes import RowOutcome
from i2v.rows import Row
from tasks.generation import submit_generation, wait_for_generation
from tasks.inputs import find_done_rows, load_rows
from tasks.outputs import publish_manifest
from tasks.transfer import store_generation

DEFAULT_MAX_IN_FLIGHT = 16
#: Each in-flight row holds up to three task runs (two of them waiting on the one before).
THREADS_PER_ROW = 3

_RUN_FATAL = (AuthError, OutOfCredits)


def task_runner_for(max_in_flight: int) -> TaskRunner[PrefectFuture[Any]]:
    """A thread pool just large enough for ``max_in_flight`` row chains."""
    runner: Any = ThreadPoolTaskRunner(max_workers=THREADS_PER_ROW * max_in_flight)
    return cast("TaskRunner[PrefectFuture[Any]]", runner)


@flow(name="generate-videos", task_runner=task_runner_for(DEFAULT_MAX_IN_FLIGHT), validate_parameters=True)
def generate_videos(
    csv: str,
    dest: str,
    model: str = DEFAULT_MODEL,
    api_path: Literal["universal", "legacy"] | None = None,
    resolution: str | None = None,
    duration: int | None = None,
    aspect_ratio: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    enhance_prompt: bool | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    poll_interval_s: float = 10.0,
    job_timeout_s: float = 900.0,
) -> dict[str, Any] | State[Any]:
    """Generate one video per CSV row into ``dest`` (a folder or ``s3://bucket/prefix``).

    Row cells override the run defaults given here (``resolution``, ``duration``, ...),
    which override the model's. The API key and base URL come from ``AIMLAPI_API_KEY``
    and ``AIMLAPI_BASE_URL``, never from parameters.
    """
    started = time.monotonic()
    _check_limits(max_in_flight, poll_interval_s, job_timeout_s)
    logger = get_run_logger()
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    defaults = {
        "resolution": resolution,
        "duration": duration,
        "aspect_ratio": aspect_ratio,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "enhance_prompt": enhance_prompt,
    }
    rows = load_rows(csv, model, api_path, {k: v for k, v in defaults.items() if v is not None})
    results: dict[int, RowOutcome] = {bad.index: outcomes.invalid(bad, flow_run_id=flow_run_id) for bad in rows.invalid}
    firsts = [row for row in rows.rows if row.index not in rows.duplicates]
    done = find_done_rows(dest, firsts)
    for row in firsts:
        if row.key in done:
            results[row.index] = outcomes.already_done(row, done[row.key], flow_run_id=flow_run_id)

    todo = [row for row in firsts if row.key not in done]
    runner = _Chains(dest, flow_run_id, max_in_flight, poll_interval_s, job_timeout_s)
    results.update(runner.run(todo))

    by_index = {row.index: row for row in rows.rows}
    for index, first in sorted(rows.duplicates.items()):
        results[index] = outcomes.duplicate(by_index[index], results[first])

    ordered = [results[i] for i in sorted(results)]
    assert len(ordered) == rows.total, "every input row has exactly one outcome"
    summary = publish_manifest(dest, ordered, _run_folder(), time.monotonic() - started)
    logger.info(
        "%d rows: %d completed, %d skipped, %d failed",
        summary.total,
        summary.completed,
        summary.skipped,
        summary.failed,
    )
    if runner.fatal is not None:
        # A failed state rather than a raise: the run is marked failed with one clear
        # message, and callers still get the exception from the state's result.
        return Failed(message=str(runner.fatal), data=runner.fatal)
    return summary.as_dict()


@dataclass
class _Chain:
    row: Row
    submit: PrefectFuture[Any]
    wait: PrefectFuture[Any]
    store: PrefectFuture[Any]


class _Chains:
    """Submits row chains under a sliding window and turns their states into outcomes."""

    def __init__(
        self, dest: str, flow_run_id: str | None, max_in_flight: int, poll_interval_s: float, job_timeout_s: float
    ) -> None:
        self.dest = dest
        self.flow_run_id = flow_run_id
        self.poll_interval_s = poll_interval_s
        self.job_timeout_s = job_timeout_s
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.stopped = threading.Event()
        self.fatal: I2VError | None = None
        # Done-callbacks run on worker threads, outside the flow's run context.
        self.logger = get_run_logger()

    def run(self, rows: Iterable[Row]) -> dict[int, RowOutcome]:
        chains: list[_Chain] = []
        results: dict[int, RowOutcome] = {}
        for row in rows:
            if not self._take_slot():
                results[row.index] = self._not_sent(row)
                continue
            submitted = submit_generation.submit(row, self.dest)
            submitted.add_done_callback(self._watch_submit)
            # Prefect resolves futures passed as arguments (its stubs do not say so): each
            # step starts when the one before it completes, and never if it failed.
            waited = wait_for_generation.submit(submitted, self.job_timeout_s, self.poll_interval_s)  # type: ignore[call-overload]
            stored = store_generation.submit(row, waited, self.dest, self.flow_run_id)
            stored.add_done_callback(lambda _: self.slots.release())
            chains.append(_Chain(row, submitted, waited, stored))
        for chain in chains:
            results[chain.row.index] = self._outcome(chain)
        return results

    def _take_slot(self) -> bool:
        while not self.stopped.is_set():
            if self.slots.acquire(timeout=0.2):
                if self.stopped.is_set():
                    self.slots.release()
                    return False
                return True
        return False

    def _watch_submit(self, future: PrefectFuture[Any]) -> None:
        future.wait()
        if future.state.is_failed():
            exc = future.result(raise_on_failure=False)
            if isinstance(exc, _RUN_FATAL) and not self.stopped.is_set():
                self.fatal = exc
                self.stopped.set()
                self.logger.error("stopping the run: %s", exc)

    def _not_sent(self, row: Row) -> RowOutcome:
        assert self.fatal is not None
        return outcomes.not_submitted(
            row, f"the run stopped after: {self.fatal}", kind=self.fatal.kind, flow_run_id=self.flow_run_id
        )

    def _outcome(self, chain: _Chain) -> RowOutcome:
        known: dict[str, Any] = {}
        for step in (chain.submit, chain.wait, chain.store):
            step.wait()
            state = step.state
            if not state.is_completed():
                value = step.result(raise_on_failure=False)
                exc = value if isinstance(value, BaseException) else RuntimeError(f"{state.name}: {state.message}")
                return outcomes.failed(chain.row, exc, flow_run_id=self.flow_run_id, **known)
            value = step.result()
            if step is chain.submit:
                known.update(
                    generation_id=value.generation_id, submit_attempts=value.attempts, submitted_at=value.submitted_at
                )
            elif step is chain.wait:
                known.update(polls=value.polls, completed_at=value.completed_at, credits_used=value.credits_used)
        outcome: RowOutcome = chain.store.result()
        return outcome


def _check_limits(max_in_flight: int, poll_interval_s: float, job_timeout_s: float) -> None:
    if max_in_flight < 1:
        raise ConfigError(f"max_in_flight must be at least 1, got {max_in_flight}")
    if poll_interval_s <= 0:
        raise ConfigError(f"poll_interval_s must be positive, got {poll_interval_s}")
    if job_timeout_s <= 0:
        raise ConfigError(f"job_timeout_s must be positive, got {job_timeout_s}")


def _run_folder() -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = runtime.flow_run.name or "local"
    return f"{stamp}-{name}"
