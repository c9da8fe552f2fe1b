"""The HTTP transport of the API and download clients: httpx's, over a small asyncio protocol.

A bulk run makes a few hundred small requests a second, and on virtual machines a system
call can cost a hundred microseconds or more, so the calls per request are what the
client's CPU goes on. httpx's default network layer (anyio) stops the socket's reading
after every read and starts it again before the next (two ``epoll_ctl`` calls), and
httpcore asks every idle pooled connection whether its server has closed it each time a
request starts or ends (a ``poll`` each, after rebuilding a table of the socket's
attributes with a ``getpeername``). The connections here keep reading on until
:data:`READ_LIMIT` bytes wait unread, and take a connection known to be open within
:data:`RECENTLY_USED_S` (it read or wrote, or a ``poll`` found nothing waiting) as open
without asking the kernel again: servers close idle keep-alive connections after seconds
(5 s and more), and a connection that broke meanwhile fails its request like any other
broken connection would.

A pooled connection outlives the request that opened it, and asyncio copies the current
context into every callback it schedules (the socket's reader among them). In a Prefect
task run that context holds the task's parameters and its flow run's results, so each
connection's callbacks run in an empty context of its own instead: the connection keeps
nothing of whoever opened or last read it.

Everything else (HTTP/1.1, TLS settings, pooling, error translation) is httpx's and
httpcore's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import select
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

import httpcore
import httpx

#: A connection known to be open this recently is taken as still open (see above).
RECENTLY_USED_S = 0.5
#: Unread bytes a connection buffers before it stops reading from the socket.
READ_LIMIT = 1 << 17

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
_T = TypeVar("_T")


@contextlib.contextmanager
def _mapped(timeout: type[Exception], error: type[Exception]) -> Iterator[None]:
    """Raise httpcore's exceptions for what the socket raised."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except (OSError, EOFError, ssl.SSLError) as exc:
        raise error(str(exc) or type(exc).__name__) from exc


class _Connection(asyncio.Protocol):
    """One connection's bytes, buffered up to :data:`READ_LIMIT`, and its write flow control."""

    def __init__(self, context: contextvars.Context) -> None:
        self.context = context
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # When the connection was last known to be open (see RECENTLY_USED_S).
        self.known_open = time.monotonic()

    # --- the transport's callbacks (run in ``context``) -----------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        _wake(self._data_waiter)
        if not self._reading_paused and len(self._buffer) > READ_LIMIT and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        _wake(self._data_waiter)
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._eof = True
        self._lost = exc
        _wake(self._data_waiter)
        _wake(self._drain_waiter)
        _wake(self._closed)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._drain_waiter)

    # --- what the stream asks -------------------------------------------------------

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the server has closed its side."""
        while not self._buffer:
            if self._lost is not None:
                raise ConnectionResetError(str(self._lost) or "connection lost") from self._lost
            if self._eof:
                return b""
            self._data_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None
        if len(self._buffer) <= max_bytes:
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            with memoryview(self._buffer) as view:
                data = bytes(view[:max_bytes])
            del self._buffer[:max_bytes]
        if self._reading_paused and len(self._buffer) <= READ_LIMIT // 2 and self.transport is not None:
            self._reading_paused = False
            # Resuming schedules the socket's reader again: in the connection's context.
            self.context.run(self.transport.resume_reading)
        self.known_open = time.monotonic()
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data``, waiting while the transport's buffer is over its high-water mark."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        while self._writing_paused and self._lost is None and not self.transport.is_closing():
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self._lost is not None:
            raise ConnectionResetError(str(self._lost)) from self._lost
        self.known_open = time.monotonic()

    def closing(self) -> bool:
        """Whether the server has closed its side, or the connection is closed or closing."""
        return self._eof or self.transport is None or self.transport.is_closing()

    async def aclose(self) -> None:
        if self.transport is None:
            return
        self.transport.close()
        await self._closed


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _in_context(context: contextvars.Context, step: Coroutine[Any, Any, _T]) -> _T:
    """Await ``step`` as a task run in ``context``: what it schedules stays in ``context``."""
    return await asyncio.get_running_loop().create_task(step, context=context)


async def _open(
    opener: Callable[[Callable[[], _Connection]], Coroutine[Any, Any, tuple[asyncio.BaseTransport, _Connection]]],
    timeout: float | None,
) -> _Connection:
    """A new connection made by ``opener`` (given the protocol factory), in an empty context of its own."""
    context = contextvars.Context()
    with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
        async with asyncio.timeout(timeout):
            _, connection = await _in_context(context, opener(lambda: _Connection(context)))
    return connection


class _Stream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection, as httpcore asks for it."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._connection.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            async with asyncio.timeout(timeout):
                await self._connection.write(buffer)

    async def aclose(self) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):  # a connection that already broke
            await self._connection.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        connection = self._connection
        plain = connection.transport
        assert plain is not None
        loop = asyncio.get_running_loop()
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                secured = await _in_context(
                    connection.context, loop.start_tls(plain, connection, ssl_context, server_hostname=server_hostname)
                )
        assert isinstance(secured, asyncio.Transport)
        connection.transport = secured
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._connection.transport
        if info == "is_readable":
            return self._readable()
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None

    def _readable(self) -> bool:
        """Whether a read would return at once: idle and readable means the server closed it."""
        connection = self._connection
        if connection.closing():
            return True
        if time.monotonic() - connection.known_open < RECENTLY_USED_S:
            return False
        sock = connection.transport.get_extra_info("socket") if connection.transport else None
        if sock is None or sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        if poller.poll(0):
            return True
        # Open as of now: every idle connection is asked on every request's start and end,
        # and on a virtual machine each of those system calls costs ~0.1 ms.
        connection.known_open = time.monotonic()
        return False


class _Backend(httpcore.AsyncNetworkBackend):
    """Opens :class:`_Stream` connections on the running asyncio loop, each in its own empty context."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local_addr = (local_address, 0) if local_address else None
        connection = await _open(
            lambda protocol: loop.create_connection(protocol, host, port, local_addr=local_addr), timeout
        )
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(connection)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return _Stream(await _open(lambda protocol: loop.create_unix_connection(protocol, path), timeout))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class PooledTransport(httpx.AsyncHTTPTransport):
    """:class:`httpx.AsyncHTTPTransport` whose pool connects through :class:`_Backend`."""

    def __init__(self, limits: httpx.Limits, *, ssl_context: ssl.SSLContext | None = None) -> None:
        context = ssl_context or httpx.create_ssl_context()
        super().__init__(verify=context, limits=limits)
        # httpx gives no way to name the pool's network backend: the same pool, made again with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )
