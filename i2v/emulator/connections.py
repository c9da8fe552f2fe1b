"""The emulator's open connections, so that an answer can break its own like a network does.

ASGI gives an application no handle on its socket, yet a dropped connection must be
real for a client's handling of it to be tested: an answer left unfinished by the
application is closed by uvicorn only after it logs an error, and it cannot be reset.
So the server runs a thin subclass of uvicorn's h11 protocol that records each
connection's transport under the client's address, the same ``(host, port)`` uvicorn
puts in the request scope as ``client``; an answer finds its transport there and
closes it (FIN) or resets it (RST).

Under another server the registry stays empty and a cut answer simply ends unfinished,
which every ASGI server turns into a closed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from typing import Literal

from uvicorn.protocols.http.h11_impl import H11Protocol

Peer = tuple[str, int]
#: ``close``: end the connection cleanly (FIN) where it stands; ``reset``: abort it (RST).
Cut = Literal["close", "reset"]

#: How long a reset waits for the bytes already written to reach the client.
_FLUSH_LIMIT_S = 1.0
_FLUSH_POLL_S = 0.002


class Connections:
    """Open connections' transports by the client's address."""

    def __init__(self) -> None:
        self._by_peer: dict[Peer, asyncio.Transport] = {}

    def opened(self, peer: Peer | None, transport: asyncio.Transport) -> None:
        if peer is not None:
            self._by_peer[peer] = transport

    def closed(self, peer: Peer | None, transport: asyncio.Transport) -> None:
        if peer is not None and self._by_peer.get(peer) is transport:
            del self._by_peer[peer]

    def find(self, peer: object) -> asyncio.Transport | None:
        """The transport of the client at ``peer`` (a scope's ``client``), if known."""
        if not isinstance(peer, list | tuple) or len(peer) != 2:
            return None
        return self._by_peer.get((str(peer[0]), int(peer[1])))

    def __len__(self) -> int:
        return len(self._by_peer)


def tracking_protocol(connections: Connections) -> type[H11Protocol]:
    """A subclass of uvicorn's h11 protocol that records each connection in ``connections``."""

    class TrackedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            connections.opened(self.client, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.closed(self.client, self.transport)
            super().connection_lost(exc)

    return TrackedH11Protocol


async def cut_connection(transport: asyncio.Transport, how: Cut) -> None:
    """End the connection now: cleanly after what was written (``close``), or with a RST.

    Before a reset, the bytes already written are given time to reach the client (and
    be acknowledged), so that it sees the status line, headers and partial body, and
    then the reset, rather than a reset that overtook them.
    """
    if how == "close":
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        await _flushed(transport, sock.fileno())
        with contextlib.suppress(OSError):
            # Linger on, timeout zero: closing sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _flushed(transport: asyncio.Transport, fd: int) -> None:
    """Wait (a bounded time) until nothing written is left unsent or unacknowledged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FLUSH_LIMIT_S
    while loop.time() < deadline:
        if transport.get_write_buffer_size() == 0 and _unacknowledged(fd) == 0:
            return
        await asyncio.sleep(_FLUSH_POLL_S)


def _unacknowledged(fd: int) -> int:
    """Bytes in the kernel's send queue (sent but not acknowledged, or not yet sent)."""
    request = getattr(termios, "TIOCOUTQ", None)
    if request is None:
        return 0
    try:
        raw = fcntl.ioctl(fd, request, b"\0\0\0\0")
    except OSError:
        return 0
    count: int = struct.unpack("i", raw)[0]
    return count
