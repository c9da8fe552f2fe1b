"""Flow parameters from :class:`~i2v.engine.spec.RunSettings`: every run setting written once.

``generate-videos``, ``fanout``, ``rerun-failed`` and ``inbox`` all take the run's
settings as flat parameters, so ``prefect deployment run fanout/fanout -p
max_credits=1000`` works as it does for ``generate-videos``, and the Prefect UI shows
each setting as a field. The flow function itself takes them as one
``settings: RunSettings``; :func:`takes_run_settings` gives the function the flat
signature Prefect reads (for its parameter schema and validation) and builds the
settings from the parameters when the flow runs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Collection, Coroutine
from typing import Any, TypeVar

from i2v.engine.spec import RunSettings

R = TypeVar("R")
Flow = Callable[..., Coroutine[Any, Any, R]]

_FIELDS = {field.name: field for field in dataclasses.fields(RunSettings)}
KEYWORD = inspect.Parameter.KEYWORD_ONLY


def takes_run_settings(*, without: Collection[str] = ()) -> Callable[[Flow[R]], Flow[R]]:
    """Decorate a flow function ``fn(..., *, settings: RunSettings)`` to take the settings as flat parameters.

    ``without`` names settings this flow does not offer (they keep their defaults).
    """
    unknown = set(without) - set(_FIELDS)
    if unknown:
        raise ValueError(f"not run settings: {sorted(unknown)}")
    hints = inspect.get_annotations(RunSettings, eval_str=True)
    offered = [name for name in _FIELDS if name not in without]

    def decorate(fn: Flow[R]) -> Flow[R]:
        signature = inspect.signature(fn, eval_str=True)
        if "settings" not in signature.parameters:
            raise TypeError(f"{fn.__name__} must take a keyword parameter `settings: RunSettings`")
        own = [parameter for parameter in signature.parameters.values() if parameter.name != "settings"]
        clash = {parameter.name for parameter in own} & set(offered)
        if clash:
            raise TypeError(f"{fn.__name__} has parameters named like run settings: {sorted(clash)}")
        settings = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=_FIELDS[name].default, annotation=hints[name]
            )
            for name in offered
        ]
        parameters = [p for p in own if p.kind is not KEYWORD]
        parameters += settings + [p for p in own if p.kind is KEYWORD]

        @functools.wraps(fn)
        async def flow_function(*args: Any, **kwargs: Any) -> R:
            given = {name: kwargs.pop(name) for name in offered if name in kwargs}
            return await fn(*args, settings=RunSettings(**given), **kwargs)

        # Prefect reads the parameters from the signature: the flat one, with real types.
        flow_function.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        flow_function.__annotations__ = {p.name: p.annotation for p in parameters}
        flow_function.__annotations__["return"] = signature.return_annotation
        del flow_function.__wrapped__
        return flow_function

    return decorate
