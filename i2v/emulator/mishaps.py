"""What can happen to an answer on its way out: held back, or cut off mid-body.

These are the failures a status code cannot express. A held answer tests a client's
timeouts (and, on a create, what it does about a job it may or may not have made); a
cut answer tests that it treats a half-received body as the transport error it is,
never as a short but complete answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from i2v.emulator.connections import Connections, Cut, cut_connection

#: The share of its body a cut answer sends before the connection goes.
CUT_SHARE = 0.5
#: How long a cut answer waits for the server to notice the connection is gone.
_NOTICE_LIMIT_S = 2.0


@dataclass(frozen=True)
class Mishap:
    """How one answer goes wrong: held ``delay`` seconds, then (if ``cut``) cut off."""

    delay: float = 0.0
    cut: Cut | None = None


async def hold(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds`` before answering; ``False`` if the client hung up meanwhile.

    Watching for the hang-up ends the wait as soon as nobody is left to answer, so a
    long hold costs neither a test's time nor the server's shutdown.
    """
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return True
    return False


class Unsent(Response):
    """No answer at all: its client is gone. ``instead_of`` is the answer it would have had."""

    def __init__(self, instead_of: Response) -> None:
        super().__init__()
        self.instead_of = instead_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class _Cut(Exception):
    """Raised inside the wrapped answer once the cut point is sent."""


class CutAnswer(Response):
    """``answer``'s status line, headers and first :data:`CUT_SHARE` of its body, then the end.

    The headers are the answer's own, ``Content-Length`` included, so the client knows
    the body is short. ``how`` is ``close`` (a clean FIN: only the length tells) or
    ``reset`` (a TCP RST).
    """

    def __init__(self, answer: Response, how: Cut, connections: Connections) -> None:
        super().__init__()
        self.answer = answer
        self.how = how
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = 0
        limit = 0

        async def cutting_send(message: Message) -> None:
            nonlocal sent, limit
            if message["type"] == "http.response.start":
                length = _content_length(message)
                limit = int(length * CUT_SHARE) if length is not None else 0
                await send(message)
                if limit <= 0:
                    raise _Cut
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            part = bytes(message.get("body", b""))[: limit - sent]
            if part:
                sent += len(part)
                await send({"type": "http.response.body", "body": part, "more_body": True})
            if sent >= limit:
                raise _Cut

        try:
            await self.answer(scope, receive, cutting_send)
        except* _Cut:
            # Also when the answer streams from a task group (a file), which wraps it.
            pass
        transport = self.connections.find(scope.get("client"))
        if transport is None:
            # Not our server: ending unfinished makes any ASGI server drop the connection.
            return
        await cut_connection(transport, self.how)
        # Return only once the server has seen the connection go, so that it takes the
        # unfinished answer for a lost client rather than an application error.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_NOTICE_LIMIT_S):
                while (await receive())["type"] != "http.disconnect":
                    pass


def _content_length(message: Message) -> int | None:
    for name, value in message.get("headers", []):
        if bytes(name).lower() == b"content-length":
            return int(value)
    return None
