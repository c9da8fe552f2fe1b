"""Makespan: how close the pipeline gets to what the provider's slots allow, against two baselines.

    python -m bench.makespan [--scenario S1|S2|S3|S4|all] [--quick] [-- PIPELINE FLAGS...]

The emulator gets C slots (``--max-concurrent C --max-pending C``: creates beyond C answer 429 with
``Retry-After``) and T seconds per job. Three sides run the same CSV, each against a fresh emulator
process: the pipeline (``i2v run``), the vendor sample's approach (one row at a time, a 20-row slice
projected to N), and a hand-written asyncio script. Makespan is the emulator's own
``last_download_at - first_create_at``; ideal is ``ceil(N / C) * T``. Flags after ``--`` go to
``i2v run`` unchanged. Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a file: python bench/makespan.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO_ROOT,
    Emulator,
    Measured,
    PrefectHomes,
    client_env,
    count_videos,
    emit,
    emulator_args,
    emulator_figures,
    exit_on_sigterm,
    i2v_command,
    log,
    manifest_counts,
    pipeline_command,
    progress_logger,
    ratio,
    rounded,
    run_measured,
    split_passthrough,
    work_folder,
    write_inputs,
)

SIDES = ("pipeline", "seed", "asyncio")
SHORT_SIDE = 16
FPS = 1


@dataclass(frozen=True)
class Scenario:
    """One provider shape and one client configuration."""

    name: str
    rows: int
    slots: int
    generation_s: float
    jitter: float
    poll_s: float
    in_flight: int
    quick_rows: int
    about: str

    def ideal_s(self, rows: int) -> float:
        return math.ceil(rows / self.slots) * self.generation_s


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("S1", 1000, 50, 3.0, 0.0, 0.333, 50, 100, "in flight = slots, fixed job time"),
        Scenario("S2", 1000, 50, 3.0, 0.3, 0.333, 100, 100, "twice the slots in flight (429s), jittered job time"),
        Scenario("S3", 3000, 100, 1.0, 0.0, 0.2, 100, 200, "short jobs, many slots: orchestration overhead shows"),
        Scenario("S4", 150, 50, 90.0, 0.3, 10.0, 50, 50, "minute-long jittered jobs at the default poll interval"),
    )
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.makespan",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Flags after -- go to 'i2v run' (e.g. -- --rows-per-shard 200).",
    )
    parser.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"], help="default: all")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: N shrunk (S1/S2: 100, S3: 200, S4: 50), 5-row seed"
    )
    parser.add_argument("--rows", type=int, help="override N for every scenario")
    parser.add_argument(
        "--sides", default=",".join(SIDES), help=f"comma-separated subset of {','.join(SIDES)} (default: all)"
    )
    parser.add_argument("--seed-rows", type=int, help="rows the one-at-a-time side runs before projecting (20)")
    parser.add_argument("--job-timeout", type=float, default=600.0, help="--job-timeout given to the pipeline")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one side may run before it is stopped")
    parser.add_argument("--work-dir", type=Path, help="keep inputs, outputs and logs here (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args(argv)
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(args.sides) - set(SIDES)
    if unknown:
        parser.error(f"unknown side(s): {', '.join(sorted(unknown))}")
    if args.seed_rows is None:
        args.seed_rows = 5 if args.quick else 20
    return args


def last_json_line(path: str) -> dict[str, Any] | None:
    for line in reversed(Path(path).read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data: dict[str, Any] = json.loads(line)
            except ValueError:
                return None
            return data
    return None


def run_side(
    side: str,
    scenario: Scenario,
    rows: int,
    csv_path: Path,
    folder: Path,
    args: argparse.Namespace,
    homes: PrefectHomes,
    passthrough: list[str],
) -> dict[str, Any]:
    side_dir = folder / side
    dest = side_dir / "dest"
    label = f"{scenario.name}/{side}"
    emu_args = emulator_args(
        max_concurrent=scenario.slots,
        max_pending=scenario.slots,
        generation_seconds=scenario.generation_s,
        generation_jitter=scenario.jitter,
        short_side=SHORT_SIDE,
        fps=FPS,
    )
    side_rows = min(args.seed_rows, rows) if side == "seed" else rows
    prefect_home = homes.new(f"{scenario.name}-pipeline") if side == "pipeline" else None
    with Emulator(emu_args, side_dir / "emulator") as emulator:
        env = client_env(emulator.url)
        cwd = side_dir
        if prefect_home is not None:
            env["PREFECT_HOME"] = str(prefect_home)
            cmd = pipeline_command(
                csv_path,
                dest,
                max_in_flight=scenario.in_flight,
                poll_interval_s=scenario.poll_s,
                job_timeout_s=args.job_timeout,
                extra=passthrough,
            )
        elif side == "seed":
            cwd = REPO_ROOT
            cmd = [
                sys.executable,
                "-m",
                "bench.seed_client",
                str(csv_path),
                "--dest",
                str(dest),
                "--poll-interval",
                f"{scenario.poll_s:g}",
                "--limit",
                str(side_rows),
                "--timeout",
                f"{args.job_timeout:g}",
            ]
        else:
            cwd = REPO_ROOT
            cmd = [
                sys.executable,
                "-m",
                "bench.asyncio_client",
                str(csv_path),
                "--dest",
                str(dest),
                "--in-flight",
                str(scenario.in_flight),
                "--poll-interval",
                f"{scenario.poll_s:g}",
            ]
        measured, _ = run_measured(
            cmd,
            env=env,
            cwd=cwd,
            logs=side_dir,
            name=label,
            timeout_s=args.timeout,
            on_tick=progress_logger(emulator, side_rows, label),
        )
        stats = emulator.stats()
        emulator_cpu = emulator.cpu_s()
    return side_figures(side, scenario, rows, side_rows, dest, measured, stats, emulator_cpu)


def side_figures(
    side: str,
    scenario: Scenario,
    rows: int,
    side_rows: int,
    dest: Path,
    measured: Measured,
    stats: dict[str, Any],
    emulator_cpu: float | None,
) -> dict[str, Any]:
    figures = emulator_figures(stats)
    manifest: dict[str, int] | None = None
    client: dict[str, Any] | None = None
    if side == "pipeline":
        manifest = manifest_counts(dest)
        completed = manifest.get("completed", 0) if manifest is not None else count_videos(dest)
    else:
        client = last_json_line(measured.stdout_log)
        completed = int(client["completed"]) if client else count_videos(dest)
    makespan = figures["makespan_s"]
    scale = rows / side_rows if side_rows else 1.0
    projected = makespan * scale if makespan is not None and side_rows != rows else makespan
    first = figures["first_create_at"]
    result: dict[str, Any] = {
        "rows": side_rows,
        "rows_completed": completed,
        "makespan_s": rounded(projected, 2),
        "makespan_over_ideal": ratio(projected, scenario.ideal_s(rows), 3),
        "polls_per_video": figures["polls_per_video"],
        "responses_429": figures["responses_429"],
        "exit_code": measured.exit_code,
        "cpu_s": rounded(measured.cpu_s, 2),
        "cpu_ms_per_video": rounded(measured.cpu_s * 1000 / completed, 1) if completed else None,
        "peak_rss_mb": rounded(measured.peak_rss_bytes / 1024 / 1024, 1),
        "wall_s": rounded(measured.wall_s, 2),
        "time_to_first_create_s": rounded(first - measured.started_at, 2) if first is not None else None,
    }
    if side_rows != rows:
        result.update(projected_from_rows=side_rows, measured_makespan_s=makespan)
    if manifest is not None:
        result["manifest_statuses"] = manifest
    if client is not None:
        result["client"] = client
    result["emulator"] = {
        k: figures[k]
        for k in ("creates", "fetches", "downloads", "downloads_served", "max_generating_seen", "responses", "jobs")
    }
    result["emulator"]["cpu_s"] = rounded(emulator_cpu, 2)
    result["process"] = measured.summary()
    return result


def run_scenario(
    scenario: Scenario, args: argparse.Namespace, root: Path, homes: PrefectHomes, passthrough: list[str]
) -> dict[str, Any]:
    rows = args.rows or (scenario.quick_rows if args.quick else scenario.rows)
    folder = root / scenario.name
    csv_path = write_inputs(folder / "input", rows)
    ideal = scenario.ideal_s(rows)
    log(
        f"{scenario.name}: N={rows}, C={scenario.slots}, T={scenario.generation_s:g}s, jitter {scenario.jitter:g}, "
        f"poll {scenario.poll_s:g}s, {scenario.in_flight} in flight; ideal {ideal:g}s"
    )
    sides: dict[str, Any] = {}
    for side in args.sides:
        sides[side] = run_side(side, scenario, rows, csv_path, folder, args, homes, passthrough)
    return {
        "about": scenario.about,
        "rows": rows,
        "slots": scenario.slots,
        "generation_s": scenario.generation_s,
        "jitter": scenario.jitter,
        "poll_s": scenario.poll_s,
        "in_flight": scenario.in_flight,
        "ideal_s": ideal,
        "sides": sides,
    }


def summary_table(scenarios: dict[str, Any]) -> str:
    head = (
        f"{'':4} {'side':9} {'rows':>5} {'done':>5} {'makespan':>9} {'x ideal':>8} {'polls/v':>8} "
        f"{'429s':>6} {'exit':>5} {'cpu s':>7} {'peak MB':>8} {'wall s':>7}"
    )
    lines = [head]
    for name, scenario in scenarios.items():
        for side, f in scenario["sides"].items():
            lines.append(
                f"{name:4} {side:9} {f['rows']:>5} {f['rows_completed']:>5} {_fmt(f['makespan_s']):>9} "
                f"{_fmt(f['makespan_over_ideal']):>8} {_fmt(f['polls_per_video']):>8} {f['responses_429']:>6} "
                f"{_fmt(f['exit_code']):>5} {_fmt(f['cpu_s']):>7} {_fmt(f['peak_rss_mb']):>8} {_fmt(f['wall_s']):>7}"
            )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    own, passthrough = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = parse_args(own)
    chosen = list(SCENARIOS.values()) if args.scenario == "all" else [SCENARIOS[args.scenario]]
    result: dict[str, Any] = {
        "bench": "makespan",
        "quick": args.quick,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "i2v": i2v_command(),
        "pipeline_extra_args": passthrough,
        "video": {"short_side": SHORT_SIDE, "fps": FPS},
        "scenarios": {},
    }
    with work_folder(args.work_dir, "i2v-bench-makespan-", keep=args.keep) as root:
        homes = PrefectHomes(root / "prefect")
        for scenario in chosen:
            result["scenarios"][scenario.name] = run_scenario(scenario, args, root, homes, passthrough)
            log("so far:\n" + summary_table(result["scenarios"]))
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
