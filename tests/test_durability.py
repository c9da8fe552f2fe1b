"""Crashes, signals and reruns of the command a user runs: nothing lost, nothing paid twice.

The emulator runs in this test process; ``i2v`` runs as its own process group, which the
tests kill with SIGKILL at random moments (during creates, polls and downloads) or stop
with a signal, and then simply run again. A killed command takes its run with it: no
process of the run is left to go on sending.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.emulated import Emulator, emulator
from tests.runs import cli_env, kill_group, run, start, wait_until, write_rows

pytestmark = pytest.mark.prefect

ROWS = 24


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the module's runs (its database is migrated once)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """Jobs of about a second, six at a time: a kill lands amid creates, polls and downloads."""
    with emulator(generation_seconds=0.8, generation_jitter=0.3, max_concurrent=6) as running:
        yield running


def _run_args(csv: Path, dest: Path) -> list[str]:
    # A create cut off by the kill is settled from the emulator's usage logs, which lag a
    # second: five seconds without its row there mean it never arrived (15 minutes on the API).
    return [
        "run",
        str(csv),
        "--dest",
        str(dest),
        "--max-in-flight",
        "6",
        "--poll-interval",
        "0.2",
        "--unknown-grace",
        "5",
    ]


def _merged(dest: Path) -> pd.DataFrame:
    return pd.read_parquet(dest / "manifest.parquet")


def _crash_then_rerun(emu: Emulator, folder: Path, prefect_home: Path, rng: random.Random) -> None:
    """Kill the whole process group at a random point, run again; check the books."""
    csv = write_rows(folder, ROWS)
    dest = folder / "out"
    env = cli_env(emu.base_url, emu.api_key, prefect_home)
    log = folder / "i2v.log"
    target = rng.randint(1, ROWS)
    process = start(_run_args(csv, dest), env, log, supervised=False)
    try:
        wait_until(
            lambda: emu.stats()["creates"] >= target or process.poll() is not None,
            timeout=180,
            what=f"{target} creates",
        )
        time.sleep(rng.uniform(0.0, 1.5))
    finally:
        kill_group(process)
    assert run(_run_args(csv, dest), env, log, timeout=240) == 0, log.read_text()[-3000:]
    stats = emu.stats()
    assert stats["billed_twice"] == 0, "no row was paid for twice"
    frame = _merged(dest)
    assert len(frame) == ROWS == frame["row_key"].nunique(), "every row accounted for, once"
    # A create cut off by the kill is settled (re-attached, or sent again): none is left unknown.
    completed = frame[frame["status"] == "completed"]
    assert len(completed) == ROWS, frame[["status", "error_kind", "error_message"]].to_string()
    assert sum(stats["jobs"].values()) <= ROWS


@pytest.mark.parametrize("trial", range(3))
def test_kill_nine_then_rerun_loses_nothing_and_pays_nothing_twice(
    emu: Emulator, tmp_path: Path, prefect_home: Path, trial: int
) -> None:
    """A SIGKILL of the whole process group at a random point, then a plain rerun: every row once, no double bill."""
    _crash_then_rerun(emu, tmp_path, prefect_home, random.Random(1000 + trial))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(10))
def test_kill_nine_trials(emu: Emulator, tmp_path: Path, prefect_home: Path, trial: int) -> None:
    """Ten more crash trials at other random points (run with ``pytest -m slow``)."""
    _crash_then_rerun(emu, tmp_path, prefect_home, random.Random(2000 + trial))


@pytest.mark.parametrize(("signals", "status"), [((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)])
def test_a_signal_stops_cleanly_and_a_rerun_finishes(
    emu: Emulator, tmp_path: Path, prefect_home: Path, signals: tuple[signal.Signals, ...], status: int
) -> None:
    """SIGTERM stops sending, writes the manifest and exits 143; a second signal exits at once; rerun finishes."""
    csv = write_rows(tmp_path, ROWS)
    dest = tmp_path / "out"
    env = cli_env(emu.base_url, emu.api_key, prefect_home)
    log = tmp_path / "i2v.log"
    process = start(_run_args(csv, dest), env, log)
    try:
        wait_until(lambda: emu.stats()["creates"] >= 8, timeout=180, what="eight creates")
        for sig in signals:
            process.send_signal(sig)
            time.sleep(0.05)
        assert process.wait(120) == status, log.read_text()[-3000:]
    finally:
        kill_group(process)
    if len(signals) == 1:
        (own,) = (dest / "runs").iterdir()
        first = pd.read_parquet(own / "manifest.parquet")
        assert len(first) == ROWS, "the manifest is written, one row per input row"
        skipped = first[first["status"] == "skipped"]
        assert len(skipped) > 0
        assert set(skipped["error_kind"]) == {"stopped"}
        assert set(first["status"]) <= {"completed", "skipped"}
    rerun = run(_run_args(csv, dest), env, log)
    stats = emu.stats()
    assert stats["billed_twice"] == 0
    frame = _merged(dest)
    assert len(frame) == ROWS == frame["row_key"].nunique()
    # A second signal exits at once: a create it cut off between intent and answer is
    # unknown, and never sent again. A single signal lets every create answer.
    unknown = frame[frame["error_kind"] == "submit_unknown"]
    if len(signals) == 1:
        assert unknown.empty, unknown[["error_message"]].to_string()
    assert set(frame.drop(unknown.index)["status"]) == {"completed"}, frame[["status", "error_kind"]].to_string()
    assert rerun == (1 if len(unknown) else 0), log.read_text()[-3000:]
    jobs = sum(stats["jobs"].values())
    assert ROWS - len(unknown) <= jobs <= ROWS, "every started job was re-attached, none made twice"


@pytest.fixture
def slow_emu() -> Iterator[Emulator]:
    """Jobs of about four seconds, six at a time: left alone, a run of 48 rows takes half a minute."""
    with emulator(generation_seconds=4.0, generation_jitter=0.5, max_concurrent=6) as running:
        yield running


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _kill_command_then_count(
    emu: Emulator, folder: Path, prefect_home: Path, kill: Callable[[subprocess.Popen[bytes]], None]
) -> None:
    """Start `i2v run` as a user does, ``kill`` it amid jobs, check that every process of the run ends."""
    csv = write_rows(folder, 48)
    env = cli_env(emu.base_url, emu.api_key, prefect_home)
    log = folder / "i2v.log"
    process = start(_run_args(csv, folder / "out"), env, log)
    tree: list[psutil.Process] = []
    try:
        wait_until(lambda: emu.stats()["creates"] >= 8, timeout=180, what="eight creates")
        root = psutil.Process(process.pid)
        tree = root.children(recursive=True)
        commands = [" ".join(child.cmdline()) for child in tree]
        assert any("i2v.cli.main" in command for command in commands), commands
        assert any("uvicorn" in command for command in commands), commands
        kill(process)
        process.wait(10)
        deadline = time.monotonic() + 15
        while any(map(_alive, tree)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [command for child, command in zip(tree, commands, strict=True) if _alive(child)]
        assert not left, f"still running 15 s after the kill: {left}"
        creates = emu.stats()["creates"]
        time.sleep(1.5)
        assert emu.stats()["creates"] == creates, "nothing more is sent"
    finally:
        kill_group(process)
        for child in tree:  # whatever outlived the command (it should not)
            with contextlib.suppress(psutil.Error):
                child.kill()


def test_sigkill_of_the_command_ends_the_run(slow_emu: Emulator, tmp_path: Path, prefect_home: Path) -> None:
    """A SIGKILL of the `i2v run` command alone ends the flow process and Prefect's server, and sending stops."""
    _kill_command_then_count(slow_emu, tmp_path, prefect_home, lambda process: process.kill())


def test_sigkill_of_the_command_group_ends_the_run(slow_emu: Emulator, tmp_path: Path, prefect_home: Path) -> None:
    """A SIGKILL of the command's process group ends the flow process and Prefect's server, and sending stops."""
    _kill_command_then_count(slow_emu, tmp_path, prefect_home, lambda process: os.killpg(process.pid, signal.SIGKILL))


def test_rerun_command_picks_rows_by_selector(tmp_path: Path, prefect_home: Path) -> None:
    """`i2v rerun` re-runs retryable failures by default, permanent ones with --failed, by kind with --kind."""
    csv = tmp_path / "mixed.csv"
    write_rows(tmp_path, 1)
    csv.write_text(
        "id,image_url,prompt,duration,resolution\n"
        "ok,a.png,A calm lake at dawn,5,480p\n"
        "gone,b.png,A train crosses a bridge,5,480p\n"
        "blocked,a.png,A forbidden door,5,480p\n"
    )
    dest = tmp_path / "out"
    log = tmp_path / "i2v.log"
    with emulator() as emu:
        env = cli_env(emu.base_url, emu.api_key, prefect_home)
        # One row at a time: the first video URL answers 404 however often it is asked for
        # again (three times), so that row fails, retryably.
        emu.fault("download", 404, count=3)
        first_run = ["run", str(csv), "--dest", str(dest), "--poll-interval", "0.2", "--max-in-flight", "1"]
        assert run(first_run, env, log) == 1
        first = _merged(dest).set_index("id")
        kinds = dict(first["error_kind"].dropna())
        assert sorted(kinds.values()) == ["download", "generation_failed"]
        (lost,) = [row_id for row_id, kind in kinds.items() if kind == "download"]
        assert emu.created() == 3
        manifest = str(dest / "manifest.parquet")
        assert run(["rerun", manifest, "--poll-interval", "0.2"], env, log) == 0, log.read_text()[-3000:]
        assert emu.created() == 3, "the retryable failure ran again, collecting its job's video unpaid"
        assert run(["rerun", manifest, "--kind", "download", "--poll-interval", "0.2"], env, log) == 0
        assert emu.created() == 3, "nothing of that kind is left to run"
        assert run(["rerun", manifest, "--failed", "--poll-interval", "0.2"], env, log) == 1
        assert emu.created() == 4, "asked to, the moderation failure ran again"
        assert emu.stats()["billed_twice"] == 1, "exactly the row asked for again was paid again"
    merged = _merged(dest).set_index("id")
    assert str(merged.loc["ok", "status"]) == str(merged.loc["gone", "status"]) == "completed"
    assert merged.loc["blocked", "attempts"] == 2
    assert merged.loc[lost, "attempts"] == 2
    assert merged.loc[({"ok", "gone"} - {lost}).pop(), "attempts"] == 1


def test_overlapping_runs_share_one_merged_manifest(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two runs writing to one destination at the same time: the merged manifest has every row of both, once."""
    first = write_rows(tmp_path, 10, name="first.csv", prompt="First batch scene {i}")
    second = write_rows(tmp_path, 10, name="second.csv", prompt="Second batch scene {i}")
    dest = tmp_path / "out"
    with emulator(generation_seconds=0.5) as emu:
        processes = []
        for number, csv in enumerate((first, second)):
            env = cli_env(emu.base_url, emu.api_key, tmp_path_factory.mktemp(f"home{number}"))
            log = tmp_path / f"run{number}.log"
            processes.append((start(["run", str(csv), "--dest", str(dest), "--poll-interval", "0.2"], env, log), log))
        try:
            for process, log in processes:
                assert process.wait(240) == 0, log.read_text()[-3000:]
        finally:
            for process, _ in processes:
                kill_group(process)
    frame = _merged(dest)
    assert len(frame) == 20 == frame["row_key"].nunique()
    assert set(frame["status"]) == {"completed"}
    assert frame["run"].nunique() == 2
