"""Headless Chromium for tests, driven over the DevTools protocol on a pipe.

Debian's ``chromium`` is installed with apt when missing (once per machine). The browser
is started with ``--remote-debugging-pipe``: DevTools messages are NUL-terminated JSON on
file descriptors 3 (to the browser) and 4 (from it), so there is no port, no websocket and
no driver binary, and nothing to install beyond the browser.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = "/usr/bin/chromium"
#: Flags that keep a headless Chromium quiet on a machine with no network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",  # the same layout width in the window and in a full-page screenshot
)
_INSTALL_TIMEOUT_S = 900
_LOCK = Path(tempfile.gettempdir()) / "i2v-chromium-install.lock"


class BrowserError(RuntimeError):
    """The browser could not be installed or started, or a DevTools command failed."""


def ensure_chromium() -> str:
    """The path of Debian's Chromium, installing it with apt first when it is missing."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise BrowserError(f"{CHROMIUM} is missing and only root can install it: apt-get install -y chromium")
    if shutil.which("apt-get") is None:
        raise BrowserError(f"{CHROMIUM} is missing and there is no apt-get to install it with")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # One install at a time, even when several test processes ask at once.
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if Path(CHROMIUM).exists():
            return CHROMIUM
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False
            )
            if done.returncode != 0:
                tail = (done.stdout + done.stderr)[-2000:]
                raise BrowserError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    if not Path(CHROMIUM).exists():
        raise BrowserError(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


def _high_pipe() -> tuple[int, int]:
    """A pipe whose two ends are numbered 10 or above (close-on-exec)."""
    ends = os.pipe()
    high = tuple(fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10) for end in ends)
    for end in ends:
        os.close(end)
    return high[0], high[1]


class Browser:
    """A headless Chromium process and its DevTools pipe."""

    def __init__(self, executable: str, *, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.mkdtemp(prefix="i2v-chromium-")
        # Chromium reads DevTools commands from fd 3 and writes to fd 4. bash puts the pipe ends
        # there (dash takes one-digit fds only); they start at 10 and up so nothing clobbers them.
        to_browser_r, to_browser_w = _high_pipe()
        from_browser_r, from_browser_w = _high_pipe()
        self._to_browser, self._from_browser = to_browser_w, from_browser_r
        args = [
            executable,
            *FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        wiring = f'exec 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-; exec "$@"'
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in close()
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", wiring, "bash", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(to_browser_r, from_browser_w),
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._replies_lock = threading.Lock()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    # --- DevTools messages ------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> dict[str, Any]:
        """Send one DevTools command and wait for its result."""
        number = next(self._ids)
        reply: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        with self._replies_lock:
            self._replies[number] = reply
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"{method}: the browser is gone ({exc}){self._log_tail()}") from exc
        try:
            answer = reply.get(timeout=30)
        except queue.Empty:
            raise BrowserError(f"{method}: no answer in 30 s{self._log_tail()}") from None
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._replies_lock:
                        waiting = self._replies.pop(message["id"], None)
                    if waiting is not None:
                        waiting.put(message)
                else:
                    self.events.put(message)

    def _log_tail(self) -> str:
        self._log.seek(0)
        tail = self._log.read()[-2000:].decode(errors="replace")
        return f"\nchromium said:\n{tail}" if tail.strip() else ""

    # --- pages ------------------------------------------------------------------------

    def new_page(self) -> Page:
        """A new tab, attached, with console, page and log events on."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, str(session))
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        return page

    def close(self) -> None:
        """Stop the browser (by its process id) and remove its profile."""
        with contextlib.suppress(BrowserError, OSError):
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # The browser's own process group: its renderer and helper processes go with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate JavaScript, click, screenshot; collects problems it sees."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        #: Console errors, uncaught exceptions and error log entries, as text.
        self.errors: list[str] = []
        #: Every URL the page requested.
        self.requests: list[str] = []
        self._loaded = False

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session)

    def pump(self) -> None:
        """Take in the events that have arrived."""
        while True:
            try:
                event = self.browser.events.get_nowait()
            except queue.Empty:
                return
            self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        if event.get("sessionId") != self.session:
            return
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])]
            self.errors.append("console: " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {description}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            self.requests.append(str(params.get("request", {}).get("url", "")))
        elif method == "Page.loadEventFired":
            self._loaded = True

    def goto(self, url: str, timeout_s: float = 20.0) -> None:
        """Open ``url`` and wait for its load event."""
        self._loaded = False
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout_s
        while not self._loaded:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{url} did not load in {timeout_s} s")
            try:
                self._take(self.browser.events.get(timeout=remaining))
            except queue.Empty:
                continue

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); page exceptions raise."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        self.pump()
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression!r} threw: {details.get('exception', {}).get('description', details)}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 10.0) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still falsy after {timeout_s} s: {expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise BrowserError(f"nothing matches {selector}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
        self.pump()

    def screenshot(self, path: Path) -> Path:
        """Save the whole page as a PNG."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})[
            "data"
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def browser() -> Iterator[Browser]:
    """A started headless Chromium, closed afterwards."""
    with Browser(ensure_chromium()) as started:
        yield started
