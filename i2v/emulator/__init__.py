"""A local emulator of AI/ML API's image-to-video endpoints.

It serves the vendor's contract on loopback (both create paths, both fetch schemas,
Bearer auth, body validation against :mod:`i2v.api.models`, queueing under a concurrency
cap, rate limits, transient errors, failed jobs, expiring download URLs, request
tracing headers and the usage logs of ``GET /v2/logs``) and answers with real H.264
MP4s made from the input image. It exists for dry runs, demos and
tests on machines without internet, and it is never kinder than the real service:
every failure a client must survive can be switched on, at random (deterministic under
a seed) or scripted one request at a time. That includes what no status code says:
the other words the vendor uses for a job's state, answers held past a client's
timeout, connections reset mid-body and downloads cut short under their full
``Content-Length``, all over real sockets.

::

    from i2v.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig(api_key="k", generation_seconds=0.5)) as base_url:
        ...  # POST {base_url}/v2/video/generations with "Authorization: Bearer k"
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from i2v.emulator.app import create_app
    from i2v.emulator.config import EmulatorConfig, Fault
    from i2v.emulator.server import running_emulator, serve

__all__ = ["EmulatorConfig", "Fault", "create_app", "running_emulator", "serve"]

# Loaded on first use: ``i2v --help`` and ``i2v emulator --help`` need only the
# configuration, not the web server, video encoder and image libraries.
_HOMES = {
    "EmulatorConfig": "i2v.emulator.config",
    "Fault": "i2v.emulator.config",
    "create_app": "i2v.emulator.app",
    "running_emulator": "i2v.emulator.server",
    "serve": "i2v.emulator.server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
