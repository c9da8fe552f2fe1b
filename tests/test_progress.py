"""Progress as a run goes: counts and time left, the terminal bar, plain lines and ``--quiet``."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from i2v.cli.progress_view import LiveBar, bar, choose_view, render_text
from i2v.engine.progress import PROGRESS_RECORD, Progress, Snapshot
from i2v.outcomes import RowOutcome
from tests.emulated import emulator
from tests.runs import I2V, cli_env, kill_group, start, write_rows

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MIDWAY = Snapshot(total=100, completed=40, skipped=0, failed=2, credits_used=12.5, elapsed_s=60.0, in_flight=8)


def _outcome(status: str, *, credits_used: float | None = None, error_kind: str | None = None) -> RowOutcome:
    return RowOutcome(
        row_key="k",
        row_index=0,
        id=None,
        image_url="a.png",
        prompt="p",
        model="m",
        route=None,
        params="{}",
        status=status,  # type: ignore[arg-type]
        error_kind=error_kind,
        credits_used=credits_used,
    )


@contextlib.contextmanager
def _terminal(columns: int = 120, rows: int = 40) -> Iterator[tuple[int, int]]:
    """A pseudo-terminal of the given size: (controller, terminal) file descriptors."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        yield controller, terminal
    finally:
        for fd in (controller, terminal):
            with contextlib.suppress(OSError):
                os.close(fd)


def _drain(controller: int, *, until: float, stop: subprocess.Popen[bytes] | None = None) -> str:
    """Everything written to the terminal until ``stop`` exits and the terminal is silent, or ``until``."""
    out = bytearray()
    while time.monotonic() < until:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # every writer has closed the terminal
                break
            out += chunk
        elif stop is None or stop.poll() is not None:
            break
    return out.decode("utf-8", errors="replace")


def test_snapshot_line_has_counts_credits_and_time_left() -> None:
    """The plain line: rows of the total, counts by status, in flight, credits, and time left as videos complete."""
    assert MIDWAY.line() == (
        "42/100 rows, 40 completed, 0 skipped, 2 failed, 8 in flight, 12.5 credits, about 87s left"
    )
    assert MIDWAY.percent == 42.0
    assert MIDWAY.eta_s == pytest.approx(58 / (40 / 60))


def test_time_left_only_while_it_can_be_known() -> None:
    """No time left before the first row, once every row is done, or without a total; minutes and hours read as such."""
    start = Snapshot(total=10, completed=0, skipped=0, failed=0, credits_used=0.0, elapsed_s=5.0)
    assert start.eta_s is None
    instant = Snapshot(total=20, completed=0, skipped=6, failed=2, credits_used=0.0, elapsed_s=2.0)
    assert instant.eta_s is None, "skipped and invalid rows end at once: no time left is guessed from them"
    assert start.line() == "0/10 rows, 0 completed, 0 skipped, 0 failed"
    done = Snapshot(total=10, completed=9, skipped=1, failed=0, credits_used=0.0, elapsed_s=5.0)
    assert (done.eta_s, done.percent) == (None, 100.0)
    unknown = Snapshot(total=None, completed=3, skipped=0, failed=0, credits_used=0.0, elapsed_s=5.0)
    assert (unknown.line(), unknown.percent) == ("3 rows, 3 completed, 0 skipped, 0 failed", 0.0)
    slow = Snapshot(total=500, completed=10, skipped=0, failed=0, credits_used=0.0, elapsed_s=60.0)
    assert slow.time_left() == "about 49 min left"
    slower = Snapshot(total=6010, completed=10, skipped=0, failed=0, credits_used=0.0, elapsed_s=60.0)
    assert slower.time_left() == "about 10.0 h left"


def test_progress_counts_outcomes_into_a_snapshot() -> None:
    """Outcomes counted by status, credits from completed rows only, failures by kind; the snapshot copies them."""
    progress = Progress(total=5)
    for outcome in (
        _outcome("completed", credits_used=100.0),
        _outcome("completed", credits_used=50.0),
        _outcome("skipped"),
        _outcome("failed", credits_used=7.0, error_kind="timeout"),
    ):
        progress.add(outcome)
    snapshot = progress.snapshot(in_flight=1)
    assert (snapshot.total, snapshot.completed, snapshot.skipped, snapshot.failed) == (5, 2, 1, 1)
    assert (snapshot.credits_used, snapshot.in_flight, snapshot.done) == (150.0, 1, 4)
    assert progress.failures_by_kind == {"timeout": 1}
    assert progress.line(in_flight=1).startswith("4/5 rows, 2 completed, 1 skipped, 1 failed, 1 in flight, 150 credits")


def test_bar_shows_counts_share_elapsed_and_time_left() -> None:
    """The bar's text: rows of the total, percent, elapsed, time left, counts by status, in flight and credits."""
    text = render_text(bar(MIDWAY), width=120)
    first, second = text.splitlines()
    assert "━" in first
    for part in ("42/100 rows", "42%", "0:01:00 elapsed", "about 87s left"):
        assert part in first
    assert second.rstrip() == "40 completed  0 skipped  2 failed  8 in flight  12.5 credits"


def test_bar_before_counting_and_while_stopping() -> None:
    """Before the run counts, a spinner says it is starting; a note while stopping sits on top of the bar."""
    assert "starting" in render_text(bar(None))
    lines = render_text(bar(MIDWAY, note="stopping: signal again to stop at once")).splitlines()
    assert lines[0] == "stopping: signal again to stop at once"
    assert "42/100 rows" in lines[1]


def test_view_is_a_bar_only_on_a_terminal() -> None:
    """--quiet wins; a terminal gets the bar, unless TERM=dumb; anything else gets plain lines."""
    assert choose_view(quiet=False, stream=io.StringIO(), environ={}) == "lines"
    assert choose_view(quiet=True, stream=io.StringIO(), environ={}) == "quiet"
    with _terminal() as (_, terminal), open(terminal, "w", closefd=False) as stream:
        assert choose_view(quiet=False, stream=stream, environ={"TERM": "xterm"}) == "bar"
        assert choose_view(quiet=False, stream=stream, environ={"TERM": "dumb"}) == "lines"
        assert choose_view(quiet=True, stream=stream, environ={"TERM": "xterm"}) == "quiet"


def test_live_bar_prints_log_lines_above_it_and_drops_the_progress_line() -> None:
    """While the bar is up, a handler on its terminal prints through it, minus progress records; then it is put back."""
    logger = logging.getLogger("i2v.test-terminal")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with _terminal() as (controller, terminal), open(terminal, "w", closefd=False) as stream:
        handler = logging.StreamHandler(stream)
        logger.addHandler(handler)
        try:
            with LiveBar(lambda: MIDWAY, stream):
                logger.info("Task run 'write-part-0' - Finished in state Completed()")
                logger.info("progress: 42/100 rows", extra={PROGRESS_RECORD: True})
                time.sleep(0.3)
            assert handler.stream is stream, "the handler writes where it did before"
            logger.info("after the bar")
        finally:
            logger.removeHandler(handler)
        screen = ANSI.sub("", _drain(controller, until=time.monotonic() + 2))
    assert "Finished in state Completed()" in screen
    assert "progress:" not in screen
    assert "42/100 rows" in screen
    assert screen.rstrip().endswith("after the bar")


# --- the command, as a user runs it ------------------------------------------------------------


def _run_args(csv: Path, dest: Path, *extra: str) -> list[str]:
    return ["run", str(csv), "--dest", str(dest), "--poll-interval", "0.5", "--max-in-flight", "2", *extra]


@pytest.mark.prefect
def test_plain_lines_off_a_terminal_and_nothing_but_the_summary_when_quiet(tmp_path: Path) -> None:
    """Off a terminal, progress lines every ten seconds among Prefect's logs; --quiet prints only the summary."""
    csv = write_rows(tmp_path, 2)
    # Jobs outlast the ten seconds between progress lines.
    with emulator(generation_seconds=12.0, generation_jitter=0.0) as emu:
        runs = {}
        for name, extra in (("plain", ()), ("quiet", ("--quiet",))):
            env = cli_env(emu.base_url, emu.api_key, tmp_path / f"prefect-{name}")
            log = tmp_path / f"{name}.log"
            runs[name] = (start(_run_args(csv, tmp_path / name, *extra), env, log), log)
        try:
            for process, log in runs.values():
                assert process.wait(240) == 0, log.read_text()[-3000:]
        finally:
            for process, _ in runs.values():
                kill_group(process)
    plain, quiet = (log.read_text() for _, log in runs.values())
    assert re.search(r"progress: \d/2 rows, \d completed, 0 skipped, 0 failed, \d in flight", plain), plain[-3000:]
    assert "| INFO    |" in plain
    assert "2 rows: 2 completed, 0 skipped, 0 failed" in plain
    assert "progress" not in quiet
    assert "INFO" not in quiet
    assert quiet.startswith("2 rows: 2 completed, 0 skipped, 0 failed"), quiet
    assert quiet.splitlines()[-1].startswith("destination's manifest:")


@pytest.mark.prefect
def test_a_terminal_gets_a_live_bar(tmp_path: Path) -> None:
    """On a pseudo-terminal, `i2v run` says it starts at once, draws the bar to its last counts, then the summary."""
    csv = write_rows(tmp_path, 3)
    with emulator(generation_seconds=1.0) as emu, _terminal() as (controller, terminal):
        env = cli_env(emu.base_url, emu.api_key, tmp_path / "prefect", TERM="xterm-256color")
        process = subprocess.Popen(
            [str(I2V), *_run_args(csv, tmp_path / "out")],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=env,
            start_new_session=True,
        )
        try:
            screen = _drain(controller, until=time.monotonic() + 240, stop=process)
            assert process.wait(30) == 0, screen[-3000:]
        finally:
            kill_group(process)
    text = ANSI.sub("", screen)
    assert "━" in text, "a bar was drawn"
    assert "3/3 rows  100%" in text, "its last frame has every row"
    assert "3 completed  0 skipped  0 failed" in text
    assert text.lstrip().startswith("i2v: starting the run"), "the first line comes at once, before Prefect's"
    assert "Finished in state" not in text, "Prefect's step-by-step lines are left out: the bar shows the run"
    assert "View at" not in text, "no links to a server that ends with the run"
    assert "progress:" not in text, "the bar stands in for the progress line"
    assert "\x1b[?25h" in screen, "the cursor is shown again"
    summary = text[text.rindex("3/3 rows") :]
    assert "3 rows: 3 completed, 0 skipped, 0 failed" in summary, "the summary comes after the bar"
