"""Prefect retry conditions: thin adapters over the predicates in :mod:`i2v.retry`.

Prefect calls ``retry_condition_fn(task, task_run, state)`` and only honours plain
functions (a ``functools.partial`` or callable object is silently treated as "never
retry"), hence one ``def`` per condition.
"""

from __future__ import annotations

from typing import Any

from i2v.retry import is_transient


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry the task run only if it failed on a transport error, 429 or 5xx."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)
