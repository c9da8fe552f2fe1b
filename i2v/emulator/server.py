"""Running the emulator: in the foreground (``serve``) or beside other code."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from i2v.emulator.app import Emulator, create_app
from i2v.emulator.config import EmulatorConfig
from i2v.emulator.connections import tracking_protocol

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 15.0


def serve(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    access_log: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted; ``on_ready`` gets the base URL once the port is bound."""
    server = _server(config, host, port, access_log=access_log)

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready(_base_url(server, host))
        await serving

    asyncio.run(main())


@contextmanager
def running_emulator(
    config: EmulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Serve in a background thread; yields the base URL (``http://host:port``, no ``/v2``).

    ``port=0`` picks a free port. The server is stopped, and its files removed, on exit.
    """
    server = _server(config, host, port, access_log=False)
    thread = threading.Thread(target=server.run, name="i2v-emulator", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start on {host}:{port}")
            time.sleep(0.01)
        base_url = _base_url(server, host)
        # Started means bound; one real request proves the application answers too.
        probe = httpx.get(f"{base_url}/_emulator/stats", timeout=5.0, trust_env=False)
        probe.raise_for_status()
        yield base_url
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
        if thread.is_alive():
            # Something holds the graceful shutdown (a request that never ends): cut it short.
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT_S)


def _server(config: EmulatorConfig, host: str, port: int, *, access_log: bool) -> uvicorn.Server:
    app = create_app(config)
    emulator: Emulator = app.state.emulator
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            # h11, with each connection on record, so that faults can cut them for real.
            http=tracking_protocol(emulator.connections),
            # The scope's client must be the socket's peer, whatever headers say, for the
            # connection registry to find it.
            proxy_headers=False,
            log_level="warning",
            access_log=access_log,
            lifespan="on",
            # Open connections and requests get this long to finish at shutdown.
            timeout_graceful_shutdown=5,
            # Clients keep connections alive across polls; do not drop them between polls.
            timeout_keep_alive=30,
        )
    )


def _base_url(server: uvicorn.Server, host: str) -> str:
    port = int(server.servers[0].sockets[0].getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
