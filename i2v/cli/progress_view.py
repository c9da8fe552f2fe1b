"""How ``i2v run`` shows a run as it goes: a live bar on a terminal, log lines elsewhere, or nothing.

The counts live in the process that runs the flow (:class:`~i2v.engine.progress.Progress`), so
that process draws the bar itself, on its stderr, reading a :class:`~i2v.engine.progress.Snapshot`
a few times a second. While the bar is up, the log handlers that write to the same
terminal (Prefect's console handler among them) print through the bar's console, so
their lines scroll above the bar instead of tearing it, and the periodic progress line
is left out: the bar already shows it.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import timedelta
from typing import Any, Literal, TextIO, cast

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from i2v.engine.progress import PROGRESS_RECORD, Snapshot

View = Literal["bar", "lines", "quiet"]
#: Bar redraws a second: smooth enough for a counter, cheap on a 2-core machine.
REFRESH_PER_S = 4
BAR_WIDTH = 40


def choose_view(*, quiet: bool, stream: TextIO, environ: Mapping[str, str] = os.environ) -> View:
    """``quiet`` if asked; a bar when ``stream`` is a terminal that can redraw; plain log lines otherwise."""
    if quiet:
        return "quiet"
    if environ.get("TERM") == "dumb":
        return "lines"
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # a stand-in without isatty, or a closed stream
        terminal = False
    return "bar" if terminal else "lines"


#: What the display says before the run counts.
STARTING = "starting: Prefect's local server, then the input"


def bar(snapshot: Snapshot | None, *, note: str | None = None, starting: RenderableType = STARTING) -> RenderableType:
    """The live display: a bar with rows, share and time left over the counts by status and credits.

    ``None`` (the run has not started counting) shows ``starting``; ``note`` is a line on top.
    """
    lines: list[RenderableType] = []
    if note:
        lines.append(Text(note, style="bold yellow"))
    if snapshot is None:
        lines.append(starting)
        return Group(*lines)
    top = Table.grid(padding=(0, 2))
    left = snapshot.time_left()
    cells: list[RenderableType] = [
        ProgressBar(total=snapshot.total or None, completed=snapshot.done, width=BAR_WIDTH),
        Text(snapshot.rows(), style="bold"),
        Text(f"{snapshot.percent:.0f}%" if snapshot.total else ""),
        Text(f"{timedelta(seconds=int(snapshot.elapsed_s))} elapsed", style="dim"),
        Text(left or "", style="cyan"),
    ]
    top.add_row(*cells)
    styles = {"completed": "green", "failed": "red", "skipped": "yellow"}
    counts = Text("  ").join(Text(part, style=styles.get(part.split(" ", 1)[1], "")) for part in snapshot.counts())
    lines += [top, counts]
    return Group(*lines)


def render_text(renderable: RenderableType, *, width: int = 120) -> str:
    """``renderable`` as plain text, as a terminal ``width`` columns wide would show it."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def quiet_console() -> None:
    """From now on, log handlers writing to this process's terminal show only warnings and errors.

    For the rest of the process: Prefect's own messages as the process ends (its local
    server stopping) are left out too.
    """
    for handler in _handlers_writing_to(sys.stderr, sys.stdout):
        handler.setLevel(max(handler.level, logging.WARNING))


def quiet_prefect(*, info: bool, links: bool) -> None:
    """Leave out of this process's terminal what only Prefect's own workings say.

    Without ``info``, Prefect's lines below warnings (its task and flow runs starting and
    finishing: the bar shows the run); without ``links``, its "View at" links (to a
    server that ends with the run). Its events queue draining at exit is never shown.
    """
    noise = _PrefectNoise(info=info, links=links)
    for handler in _handlers_writing_to(sys.stderr, sys.stdout):
        handler.addFilter(noise)


class _PrefectNoise(logging.Filter):
    def __init__(self, *, info: bool, links: bool) -> None:
        super().__init__()
        self._info = info
        self._links = links

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        message = str(record.msg)
        if message.startswith("Still processing items"):
            return False
        if not self._links and message.startswith("View at "):
            return False
        return self._info or record.levelno >= logging.WARNING or not _is_prefect(record)


def _is_prefect(record: logging.LogRecord) -> bool:
    # Prefect's run loggers are named for their run ("Flow run 'x'"): they sit under prefect.
    return record.name.split(".", 1)[0] == "prefect"


class LiveBar:
    """The bar on ``stream``, redrawn from ``read`` (None until the run counts), while used as a context.

    The last counts stay on screen once the block ends.
    """

    def __init__(self, read: Callable[[], Snapshot | None], stream: TextIO) -> None:
        self._read = read
        self._last: Snapshot | None = None
        self._note: str | None = None
        self._stream = stream
        # One spinner for the whole wait: a new one each frame would never turn.
        self._starting = Spinner("dots", text=STARTING)
        self._undo = ExitStack()
        self.console = Console(file=stream)
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=REFRESH_PER_S,
            redirect_stdout=_same_file(sys.stdout, stream),
            redirect_stderr=True,
        )

    def stopping(self, message: str) -> None:
        """Show that the run is stopping: ``message`` above the bar and on top of it."""
        self._note = message
        self.console.print(Text(message, style="bold yellow"))

    def _render(self) -> RenderableType:
        # The last counts stay on screen once the run has let go of its engine. Once it is
        # stopping they stay as they were: the rows it never sent are skipped at once, and
        # the bar would jump to the end as if they were done.
        snapshot = self._read()
        if snapshot is not None and (self._note is None or self._last is None):
            self._last = snapshot
        return bar(self._last, note=self._note, starting=self._starting)

    def __enter__(self) -> LiveBar:
        self._live.start(refresh=True)
        # Now sys.stderr is rich's stand-in, which prints above the bar.
        through = cast(TextIO, _Through(sys.stderr))
        for handler in _handlers_writing_to(self._stream):
            handler.addFilter(_not_progress)
            self._undo.callback(handler.removeFilter, _not_progress)
            console = getattr(handler, "console", None)
            if isinstance(console, Console):  # Prefect's handler prints through a rich console of its own
                self._undo.callback(setattr, console, "file", console.file)
                console.file = through
            else:
                self._undo.callback(handler.setStream, handler.setStream(through))
        return self

    def __exit__(self, *exc: object) -> None:
        self._undo.close()
        self._live.stop()


class _Through(io.TextIOBase):
    """Writes to ``target``: rich's stand-in for stderr while the bar is up.

    Rich unwraps its own stand-in when a console is pointed at it (and would then write
    past the bar); this wrapper is not unwrapped.
    """

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()


def _not_progress(record: logging.LogRecord) -> bool:
    return not getattr(record, PROGRESS_RECORD, False)


def _handlers_writing_to(*streams: TextIO) -> list[logging.StreamHandler[Any]]:
    """Every log handler of this process that writes to one of ``streams`` (by file descriptor)."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    found: dict[int, logging.StreamHandler[Any]] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and any(_same_file(handler.stream, s) for s in streams):
                found[id(handler)] = handler
    return list(found.values())


def _same_file(one: Any, other: Any) -> bool:
    """Whether two streams are the same object or write to the same open file."""
    if one is other:
        return True
    try:
        return bool(os.path.sameopenfile(one.fileno(), other.fileno()))
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
