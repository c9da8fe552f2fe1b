"""The HTTP transport of the API and download clients: httpx's own, made cheaper to pool.

Each time a request starts or ends, httpcore asks every idle pooled connection whether
the server has closed it, and httpx's default network stream answers by rebuilding a
table of the socket's attributes (with a ``getpeername`` system call) to find the
socket, before polling it. At a few hundred requests a second that was an eighth of the
event loop's time. The streams here keep their socket from the start and only poll it.
Everything else (timeouts, TLS, error translation) is httpx's and httpcore's.
"""

from __future__ import annotations

import select
import socket
from typing import Any

import httpcore
import httpx


def _readable(sock: socket.socket) -> bool:
    """Whether a read would return at once: data, or the end a closed peer leaves."""
    fd = sock.fileno()
    if fd < 0:
        return True  # closed here: the next read ends
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """A network stream that knows its socket."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            # Idle and readable means the server closed it (or sent what nobody asked for).
            return self._socket is None or _readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's backend for asyncio, handing out :class:`_Stream` objects."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PooledTransport(httpx.AsyncHTTPTransport):
    """:class:`httpx.AsyncHTTPTransport` whose pool uses :class:`_Backend`."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        # httpx gives no way to name the pool's network backend: the same pool, made again with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )
