"""Prefect retry conditions: thin adapters over :mod:`i2v.engine.retry` and :mod:`i2v.errors`.

Prefect calls ``retry_condition_fn(task, task_run, state)`` and only honours plain
functions (a ``functools.partial`` or callable object is silently treated as "never
retry"), hence one ``def`` per condition.
"""

from __future__ import annotations

from typing import Any

from i2v.engine.retry import is_transient
from i2v.engine.spec import RowsUnfinished


def _exception(state: Any) -> BaseException | None:
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return exc if isinstance(exc, BaseException) else None


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry the task run only if it failed on a transport error, 429 or 5xx."""
    exc = _exception(state)
    return exc is not None and is_transient(exc)


def unfinished_rows(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a batch only for its rows that failed on something transient."""
    return isinstance(_exception(state), RowsUnfinished)
