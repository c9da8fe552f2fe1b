"""The pooled transport over real loopback servers: plain and TLS, reuse, closes, timeouts, refusals."""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import gc
import ipaddress
import ssl
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from i2v.api.transport import RECENTLY_USED_S, PooledTransport
from tests.loopback import serving

pytestmark = pytest.mark.anyio

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)


class _Echo(BaseHTTPRequestHandler):
    """Answers every GET with the client's port, keeping the connection open."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = str(self.client_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Large(_Echo):
    """Answers every GET with a megabyte, naming the client's port in a header."""

    def do_GET(self) -> None:
        body = bytes(1 << 20)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Port", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(body)


class _ClosesWhenIdle(_Echo):
    """Closes a kept-alive connection a moment after answering, as servers do with idle ones."""

    timeout = 0.2


@contextmanager
def _tls_serving(folder: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """An HTTPS echo server with a fresh self-signed certificate; yields its URL and a context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ssl.create_default_context(cafile=str(cert_path))
    finally:
        server.shutdown()
        server.server_close()


async def test_requests_reuse_one_kept_alive_connection() -> None:
    """Requests one after another travel on one pooled connection."""
    with serving(_Echo) as url:
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
            ports = {(await http.get(url)).text for _ in range(5)}
    assert len(ports) == 1


async def test_https_with_a_trusted_certificate(tmp_path: Path) -> None:
    """TLS connects, verifies the server's certificate, and keeps the connection for the next request."""
    with _tls_serving(tmp_path) as (url, context):
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS, ssl_context=context)) as http:
            first, second = (await http.get(url)), (await http.get(url))
    assert first.status_code == second.status_code == 200
    assert first.text == second.text, "the TLS connection was reused"


async def test_https_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    """A certificate the context does not trust fails the connection, as httpx's own transport does."""
    with _tls_serving(tmp_path) as (url, _):
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(url)


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """Past the recently-used window, an idle connection the server closed is noticed and replaced."""
    with serving(_ClosesWhenIdle) as url:
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
            first = (await http.get(url)).text
            await asyncio.sleep(RECENTLY_USED_S + 0.3)
            second = await http.get(url)
    assert second.status_code == 200
    assert second.text != first, "a new connection"


async def test_an_idle_connection_found_open_is_not_asked_again_within_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll that finds an idle connection open counts as knowing it open: the next requests do not poll it again."""
    import select

    polls = 0
    real_poll = select.poll

    def counting_poll() -> select.poll:
        nonlocal polls
        polls += 1
        return real_poll()

    with serving(_Echo) as url:
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
            ports = {answer.text for answer in await asyncio.gather(http.get(url), http.get(url))}
            assert len(ports) == 2, "two pooled connections"
            await asyncio.sleep(RECENTLY_USED_S + 0.1)
            monkeypatch.setattr(select, "poll", counting_poll)
            for _ in range(10):
                assert (await http.get(url)).status_code == 200
    # Both are asked once, past the window; without the rule the idle one is asked twice a request.
    assert 1 <= polls <= 4


async def test_a_silent_server_times_out_as_a_read_timeout() -> None:
    """No answer within the read timeout is httpx's ReadTimeout."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS), timeout=httpx.Timeout(0.3)) as http:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"http://127.0.0.1:{port}/")
            assert time.monotonic() - started < 3
    finally:
        server.close()
        await server.wait_closed()


async def test_a_refused_connection_is_a_connect_error() -> None:
    """Nothing listening is httpx's ConnectError (so a create there is known not to have been sent)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_a_reset_mid_answer_is_a_transport_error() -> None:
    """A server that drops the connection halfway through its answer raises a transport error, not a short body."""

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
            with pytest.raises(httpx.TransportError):
                await http.get(f"http://127.0.0.1:{port}/")
    finally:
        server.close()
        await server.wait_closed()


async def test_a_pooled_connection_keeps_nothing_of_the_request_that_opened_it() -> None:
    """What a request's context held is freed once it ends, though it opened and slowly read a pooled connection."""
    holder: contextvars.ContextVar[object] = contextvars.ContextVar("holder")

    class Held:
        """Stands for a task run's parameters."""

    async def slow_request(http: httpx.AsyncClient, url: str) -> tuple[weakref.ref[Held], str, int]:
        held = Held()
        holder.set(held)
        async with http.stream("GET", url) as response:
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                await asyncio.sleep(0.001)  # slower than loopback: the connection stops reading and starts again
        return weakref.ref(held), response.headers["X-Port"], size

    with serving(_Large) as url:
        async with httpx.AsyncClient(transport=PooledTransport(LIMITS)) as http:
            ref, port, size = await asyncio.create_task(slow_request(http, url))
            await asyncio.sleep(0)  # the loop lets go of the finished task (and its context)
            gc.collect()
            assert size == 1 << 20
            assert ref() is None, "the pooled connection kept the context of the request that opened it"
            again = await http.get(url)
    assert again.headers["X-Port"] == port, "the connection was still pooled"
