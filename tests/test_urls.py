"""Which download URLs are followed: https, loopback http for a loopback API, checked redirects, bounded size."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from i2v.api.downloads import DownloadRules, is_loopback, open_download
from i2v.engine.retry import is_transient
from i2v.errors import DownloadError, DownloadRefused
from tests.loopback import serving

pytestmark = pytest.mark.anyio
BODY = b"\x00\x00\x00\x18ftypmp42" + b"v" * 2000


class _Files(BaseHTTPRequestHandler):
    """/ok serves BODY; /hop/N redirects N more times; /to/<url> redirects there; /endless streams without end."""

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._answer(200, BODY)
        elif self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self._redirect("/ok" if left == 0 else f"/hop/{left - 1}")
        elif self.path.startswith("/to/"):
            self._redirect(self.path.removeprefix("/to/"))
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"z" * 4096
            for _ in range(64):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._answer(404, b"not here")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    """A real HTTP server on loopback; yields its base URL."""
    with serving(_Files) as url:
        yield url


LOOPBACK = DownloadRules(allow_loopback_http=True, max_redirects=3)


async def _fetch(url: str, rules: DownloadRules) -> bytes:
    async with httpx.AsyncClient() as http, open_download(http, url, rules=rules) as (chunks, _):
        return b"".join([chunk async for chunk in chunks])


def test_loopback_is_recognised() -> None:
    """localhost, 127.x and ::1 are loopback; other hosts and nonsense are not."""
    assert all(is_loopback(host) for host in ("localhost", "LOCALHOST.", "127.0.0.1", "127.9.9.9", "::1", "[::1]"))
    assert not any(is_loopback(host) for host in ("example.com", "10.0.0.1", "0.0.0.0", "", None, "127.0.0.1.nip.io"))


def test_rules_for_an_api_allow_loopback_http_only_for_a_loopback_api() -> None:
    """The emulator on loopback may hand out http://127.0.0.1 URLs; a remote API may not hand out http at all."""
    local = DownloadRules.for_api("http://127.0.0.1:8000")
    remote = DownloadRules.for_api("https://api.aimlapi.com")
    local.check("http://127.0.0.1:9/v.mp4")
    local.check("https://cdn.example.com/v.mp4")
    remote.check("https://cdn.example.com/v.mp4")
    for url in ("http://127.0.0.1:9/v.mp4", "http://cdn.example.com/v.mp4", "file:///etc/passwd", "ftp://x/v.mp4"):
        with pytest.raises(DownloadRefused):
            remote.check(url)
    for url in ("http://cdn.example.com/v.mp4", "file:///etc/passwd", "data:video/mp4;base64,AAAA", "/v.mp4"):
        with pytest.raises(DownloadRefused):
            local.check(url)


async def test_redirects_are_followed_within_the_bound(files: str) -> None:
    """Three hops arrive; four are refused, naming the bound."""
    assert await _fetch(f"{files}/hop/2", LOOPBACK) == BODY
    with pytest.raises(DownloadRefused, match="more than 3 times"):
        await _fetch(f"{files}/hop/3", LOOPBACK)


async def test_a_redirect_to_another_scheme_or_host_is_refused(files: str) -> None:
    """A hop to file:// or to plain http off loopback is checked like the first URL, and refused."""
    for target in ("file:///etc/passwd", "http://example.com/v.mp4", "gopher://example.com/"):
        with pytest.raises(DownloadRefused) as info:
            await _fetch(f"{files}/to/{target}", LOOPBACK)
        assert not is_transient(info.value), "a refusal is not retried"


async def test_https_only_refuses_plain_http_before_connecting(files: str) -> None:
    """Without the loopback allowance, an http URL is refused without a request."""
    with pytest.raises(DownloadRefused, match="only https"):
        await _fetch(f"{files}/ok", DownloadRules())


async def test_size_limit_applies_to_declared_and_streamed_lengths(files: str) -> None:
    """A Content-Length over the limit is refused at once; a chunked body is cut off once it passes it."""
    small = DownloadRules(allow_loopback_http=True, max_bytes=1000)
    with pytest.raises(DownloadRefused, match="larger than"):
        await _fetch(f"{files}/ok", small)
    with pytest.raises(DownloadRefused, match="larger than"):
        await _fetch(f"{files}/endless", DownloadRules(allow_loopback_http=True, max_bytes=64 * 1024))
    assert len(await _fetch(f"{files}/endless", LOOPBACK)) == 64 * 4096


async def test_a_missing_file_is_a_download_error_with_its_status(files: str) -> None:
    """A 404 stays what it was: a download error carrying the status."""
    with pytest.raises(DownloadError) as info:
        await _fetch(f"{files}/gone", LOOPBACK)
    assert info.value.status == 404
