"""The API and download clients' connections (httpx's own pool) over real loopback servers."""

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

from i2v.api.client import VideoApi, make_http_client
from i2v.api.models import get_model
from i2v.api.settings import ApiSettings, Secret
from i2v.errors import TransportError
from tests.loopback import serving

pytestmark = pytest.mark.anyio

ROUTE = get_model("alibaba/wan2.5-i2v-preview").route()


def _settings(base_url: str = "http://127.0.0.1", timeout_s: float = 5.0) -> ApiSettings:
    return ApiSettings(api_key=Secret("k"), base_url=base_url, timeout_s=timeout_s)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback servers are reached directly and trusted only as the test says, whatever the machine names."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)


class _Echo(BaseHTTPRequestHandler):
    """Answers every GET with the client's port, keeping the connection open."""

    protocol_version = "HTTP/1.1"
    delay_s = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        body = str(self.client_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _SlowEcho(_Echo):
    """Takes a moment over every answer, so that requests sent together overlap."""

    delay_s = 0.1


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
def _tls_serving(folder: Path, handler: type[BaseHTTPRequestHandler]) -> Iterator[tuple[str, Path]]:
    """An HTTPS server with a fresh self-signed certificate; yields its URL and the certificate's file."""
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_path
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _served(
    scheme: str, handler: type[BaseHTTPRequestHandler], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``handler`` over plain HTTP, or over HTTPS with its certificate trusted through ``SSL_CERT_FILE``."""
    if scheme == "http":
        with serving(handler) as url:
            yield url
        return
    with _tls_serving(folder, handler) as (url, cert):
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        yield url


async def test_requests_reuse_one_kept_alive_connection() -> None:
    """Requests one after another travel on one pooled connection."""
    with serving(_Echo) as url:
        async with make_http_client(_settings(url)) as http:
            ports = {(await http.get("/")).text for _ in range(5)}
    assert len(ports) == 1


async def test_the_pool_holds_at_most_max_connections() -> None:
    """Eight requests at once on a client of two connections travel on two connections, reused."""
    with serving(_SlowEcho) as url:
        async with make_http_client(_settings(url), max_connections=2) as http:
            answers = await asyncio.gather(*(http.get("/") for _ in range(8)))
    assert len({answer.text for answer in answers}) == 2


async def test_https_verifies_against_the_certificates_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate trusted through SSL_CERT_FILE connects, and its connection is kept for the next request."""
    with _served("https", _Echo, tmp_path, monkeypatch) as url:
        async with make_http_client(_settings(url)) as http:
            first, second = (await http.get("/")), (await http.get("/"))
    assert first.status_code == second.status_code == 200
    assert first.text == second.text, "the TLS connection was reused"


async def test_https_refuses_a_certificate_nobody_trusts(tmp_path: Path) -> None:
    """A self-signed certificate the environment does not name fails the connection: the request is not sent."""
    with _tls_serving(tmp_path, _Echo) as (url, _):
        api = VideoApi(make_http_client(_settings(url)), Secret("k"))
        try:
            with pytest.raises(TransportError) as info:
                await api.fetch(ROUTE, "g1")
        finally:
            await api.aclose()
    assert info.value.sent is False


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    """An idle connection the server has closed is not used again: the next request opens a new one and succeeds."""
    with serving(_ClosesWhenIdle) as url:
        async with make_http_client(_settings(url)) as http:
            first = (await http.get("/")).text
            await asyncio.sleep(0.5)
            second = await http.get("/")
    assert second.status_code == 200
    assert second.text != first, "a new connection"


async def test_a_silent_server_is_a_request_that_may_have_been_sent() -> None:
    """No answer within the client's timeout fails promptly, as a transport error that may have reached the server."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = VideoApi(make_http_client(_settings(f"http://127.0.0.1:{port}", timeout_s=0.3)), Secret("k"))
    try:
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            await api.fetch(ROUTE, "g1")
        assert time.monotonic() - started < 3
    finally:
        await api.aclose()
        server.close()
        await server.wait_closed()
    assert info.value.sent is True


async def test_a_refused_connection_is_a_request_not_sent() -> None:
    """Nothing listening is a transport error known not to have been sent (so a create there may be sent again)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    api = VideoApi(make_http_client(_settings(f"http://127.0.0.1:{port}")), Secret("k"))
    try:
        with pytest.raises(TransportError) as info:
            await api.create(ROUTE, {})
    finally:
        await api.aclose()
    assert info.value.sent is False


async def test_a_reset_mid_answer_is_a_transport_error() -> None:
    """A server that drops the connection halfway through its answer raises a transport error, not a short body."""

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = VideoApi(make_http_client(_settings(f"http://127.0.0.1:{port}")), Secret("k"))
    try:
        with pytest.raises(TransportError) as info:
            await api.fetch(ROUTE, "g1")
    finally:
        await api.aclose()
        server.close()
        await server.wait_closed()
    assert info.value.sent is True


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_pooled_connection_keeps_nothing_of_the_requests_that_used_it(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a request's context held is freed when it ends, though it opened and slowly read a pooled connection."""
    holder: contextvars.ContextVar[object] = contextvars.ContextVar("holder")

    class Held:
        """Stands for a task run's parameters and its flow run's results."""

    async def slow_request(http: httpx.AsyncClient) -> tuple[weakref.ref[Held], str, int]:
        held = Held()
        holder.set(held)
        async with http.stream("GET", "/") as response:
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                await asyncio.sleep(0.001)  # slower than loopback: reading stops and starts again
        return weakref.ref(held), response.headers["X-Port"], size

    with _served(scheme, _Large, tmp_path, monkeypatch) as url:
        async with make_http_client(_settings(url)) as http:
            opened, port, size = await asyncio.create_task(slow_request(http))
            reused, again, _ = await asyncio.create_task(slow_request(http))
            await asyncio.sleep(0)  # the loop lets go of the finished tasks (and their contexts)
            gc.collect()
            assert size == 1 << 20
            assert again == port, "the second request reused the pooled connection"
            assert opened() is None, "the pooled connection kept the context of the request that opened it"
            assert reused() is None, "the pooled connection kept the context of the request that last read it"
            assert (await http.get("/")).headers["X-Port"] == port, "the connection was still pooled"
