"""A TCP proxy on loopback that can refuse connections for a while: an outage, made on demand."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class OutageProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`outage` refuses and cuts connections for a time."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.outages = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="outage-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(0), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def outage(self, seconds: float) -> None:
        """Refuse new connections and cut open ones for ``seconds``, then serve again on the same port."""
        self.outages += 1
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        threading.Timer(seconds, self._reopen).start()

    def _reopen(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(self.port), self._loop).result(10)

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


@contextmanager
def outage_proxy(target_url: str) -> Iterator[OutageProxy]:
    """A running proxy in front of ``http://host:port``, stopped on exit."""
    host, _, port = target_url.removeprefix("http://").partition(":")
    proxy = OutageProxy(host, int(port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
