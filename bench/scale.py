"""Scale: what a large CSV costs the pipeline, on a fast emulator with ample slots.

    python -m bench.scale [--rows 100000] [--quick] [-- PIPELINE FLAGS...]

One ``i2v run`` of N rows (default 100,000; ``--quick``: 2,000) against an emulator that is never the
bottleneck (200 slots, 0.5 s jobs, tiny videos). Samples the pipeline's whole process tree (the CLI and
Prefect's ephemeral server): peak RSS, RSS when 20 % and 100 % of rows have their video (progress is the
emulator's ``downloads_served``), time from the command's start to the emulator's first create, and rows
per second between 20 % and 100 % and overall. Flags after ``--`` go to ``i2v run`` unchanged.
Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

if not __package__:  # run as a file: python bench/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    MB,
    Emulator,
    PrefectHomes,
    TreeSampler,
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
    ratio,
    rounded,
    run_measured,
    split_passthrough,
    work_folder,
    write_inputs,
)

MILESTONES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


class Progress:
    """Follows the emulator's ``downloads_served`` and notes when each milestone (% of rows) is passed."""

    def __init__(self, emulator: Emulator, rows: int, log_every_s: float = 15.0) -> None:
        self.emulator = emulator
        self.rows = rows
        self.log_every_s = log_every_s
        #: percent -> (time.time() when first seen passed, downloads_served then)
        self.passed: dict[int, tuple[float, int]] = {}
        self.first_create_at: float | None = None
        self._last_log = time.monotonic()

    def tick(self, sampler: TreeSampler) -> None:
        try:
            stats = self.emulator.stats()
        except httpx.HTTPError:
            return
        now = time.time()
        served = int(stats.get("downloads_served") or 0)
        if self.first_create_at is None and stats.get("first_create_at") is not None:
            self.first_create_at = float(stats["first_create_at"])
            log(f"first create seen at the emulator; rss {sampler.rss_now / MB:.0f} MB")
        for percent in MILESTONES:
            if percent not in self.passed and served >= math.ceil(self.rows * percent / 100):
                self.passed[percent] = (now, served)
                log(f"{percent}% ({served}/{self.rows}) videos downloaded; rss {sampler.rss_now / MB:.0f} MB")
        if time.monotonic() - self._last_log >= self.log_every_s:
            self._last_log = time.monotonic()
            generating = (stats.get("jobs") or {}).get("generating")
            log(
                f"{served}/{self.rows} downloaded, {stats.get('creates', 0)} creates, {generating} generating; "
                f"rss {sampler.rss_now / MB:.0f} MB in {sampler.processes_now} processes"
            )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Flags after -- go to 'i2v run' (e.g. -- --rows-per-shard 500 --rows-per-task 50).",
    )
    parser.add_argument("--rows", type=int, help="rows in the CSV (default: 100000; --quick: 2000)")
    parser.add_argument("--quick", action="store_true", help="smoke run with 2000 rows")
    parser.add_argument("--max-in-flight", type=int, default=200, help="given to the pipeline (default: 200)")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="given to the pipeline (default: 0.25)")
    parser.add_argument("--job-timeout", type=float, default=900.0, help="given to the pipeline (default: 900)")
    parser.add_argument("--slots", type=int, default=200, help="emulator --max-concurrent (default: 200)")
    parser.add_argument("--generation-seconds", type=float, default=0.5, help="emulator job time (default: 0.5)")
    parser.add_argument("--timeout", type=float, help="seconds before the run is stopped (default: max(1800, rows/2))")
    parser.add_argument("--work-dir", type=Path, help="keep inputs, outputs and logs here (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 2000 if args.quick else 100_000
    if args.timeout is None:
        args.timeout = max(1800.0, args.rows / 2)
    return args


def rss_at(sampler: TreeSampler, when: float | None) -> int | None:
    return sampler.rss_at(when) if when is not None else None


def figures(
    rows: int,
    progress: Progress,
    sampler: TreeSampler,
    stats: dict[str, Any],
    started_at: float,
    exit_at: float,
) -> dict[str, Any]:
    emu = emulator_figures(stats)
    first, last = emu["first_create_at"], emu["last_download_at"]
    served = emu["downloads_served"]

    def rss_mb(when: float | None) -> float | None:
        rss = rss_at(sampler, when)
        return rounded(rss / MB, 1) if rss is not None else None

    at20 = progress.passed.get(20)
    # 100 %: the emulator's own time of the last download is exact; ticks are 0.25 s apart.
    at100 = last if served >= rows and last is not None else None
    sustained = None
    if at20 is not None and at100 is not None and at100 > at20[0]:
        sustained = (served - at20[1]) / (at100 - at20[0])
    passed = dict(progress.passed)
    if at100 is not None:
        passed[100] = (at100, served)
    milestones = [
        {
            "percent": percent,
            "t_s": rounded(when - started_at, 2),
            "downloads": count,
            "rss_mb": rss_mb(when),
        }
        for percent, (when, count) in sorted(passed.items())
    ]
    rss20, rss100 = rss_at(sampler, at20[0] if at20 is not None else None), rss_at(sampler, at100)
    growth = None
    if rss20 is not None and rss100 is not None and at20 is not None and served > at20[1]:
        growth = (rss100 - rss20) / MB / (served - at20[1]) * 1000
    return {
        "time_to_first_create_s": rounded(first - started_at, 2) if first is not None else None,
        "peak_rss_mb": rounded(sampler.peak_rss / MB, 1),
        "peak_rss_by_process_mb": sampler.peaks_mb(),
        "rss_at_20pct_mb": rss_mb(at20[0]) if at20 is not None else None,
        "rss_at_100pct_mb": rss_mb(at100),
        # Between 20 % and 100 %: ~0 when memory is bounded by the rows in flight.
        "rss_growth_mb_per_1k_rows": rounded(growth, 1),
        "t_20pct_s": rounded(at20[0] - started_at, 2) if at20 is not None else None,
        "t_100pct_s": rounded(at100 - started_at, 2) if at100 is not None else None,
        "rows_per_s_sustained": rounded(sustained, 2),
        "rows_per_s_overall": ratio(served, (last - started_at) if last is not None else None, 2),
        "rows_per_s_after_first_create": ratio(
            served, (last - first) if last is not None and first is not None else None, 2
        ),
        "after_last_download_s": rounded(exit_at - last, 2) if last is not None else None,
        "milestones": milestones,
        "emulator": {
            k: emu[k]
            for k in (
                "makespan_s",
                "creates",
                "fetches",
                "downloads_served",
                "polls_per_video",
                "responses_429",
                "max_generating_seen",
                "responses",
                "jobs",
            )
        },
    }


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    own, passthrough = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = parse_args(own)
    result: dict[str, Any] = {
        "bench": "scale",
        "quick": args.quick,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "i2v": i2v_command(),
        "pipeline_extra_args": passthrough,
        "rows": args.rows,
        "max_in_flight": args.max_in_flight,
        "poll_interval_s": args.poll_interval,
        "emulator_slots": args.slots,
        "generation_s": args.generation_seconds,
    }
    with work_folder(args.work_dir, "i2v-bench-scale-", keep=args.keep) as root:
        log(f"writing {args.rows} rows")
        csv_path = write_inputs(root / "input", args.rows)
        dest = root / "dest"
        prefect_home = PrefectHomes(root / "prefect").new("scale")
        emu_args = emulator_args(
            max_concurrent=args.slots, generation_seconds=args.generation_seconds, short_side=16, fps=1
        )
        with Emulator(emu_args, root / "emulator") as emulator:
            env = client_env(emulator.url)
            env["PREFECT_HOME"] = str(prefect_home)
            cmd = pipeline_command(
                csv_path,
                dest,
                max_in_flight=args.max_in_flight,
                poll_interval_s=args.poll_interval,
                job_timeout_s=args.job_timeout,
                extra=passthrough,
            )
            progress = Progress(emulator, args.rows)
            measured, sampler = run_measured(
                cmd,
                env=env,
                cwd=root,
                logs=root,
                name="scale-pipeline",
                timeout_s=args.timeout,
                on_tick=progress.tick,
                tick_s=0.25,
                history=True,
            )
            stats = emulator.stats()
            emulator_cpu = emulator.cpu_s()
        manifest = manifest_counts(dest)
        completed = manifest.get("completed", 0) if manifest is not None else count_videos(dest)
        result.update(
            rows_completed=completed,
            exit_code=measured.exit_code,
            wall_s=rounded(measured.wall_s, 2),
            cpu_s=rounded(measured.cpu_s, 2),
            cpu_ms_per_row=rounded(measured.cpu_s * 1000 / completed, 1) if completed else None,
        )
        result.update(
            figures(args.rows, progress, sampler, stats, measured.started_at, measured.started_at + measured.wall_s)
        )
        result["emulator"]["cpu_s"] = rounded(emulator_cpu, 2)
        result["manifest_statuses"] = manifest
        result["process"] = measured.summary()
    log(
        f"{args.rows} rows: exit {result['exit_code']}, {completed} completed in {result['wall_s']}s; "
        f"first create after {result['time_to_first_create_s']}s; peak rss {result['peak_rss_mb']} MB "
        f"(20%: {result['rss_at_20pct_mb']}, 100%: {result['rss_at_100pct_mb']}); "
        f"{result['rows_per_s_sustained']} rows/s sustained, {result['rows_per_s_overall']} overall"
    )
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
