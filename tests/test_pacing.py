"""The poll schedule: fixed until learned, then a ladder near each job's expected finish."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable

import pytest

from i2v.engine.pacing import SEEDS_GIVE_WAY, JobPolls, PollPacer


def _run_job(
    pacer: PollPacer, seconds: float, job_class: str = "c", *, late: Callable[[], float] = lambda: 0.0
) -> tuple[int, float]:
    """Poll a simulated job that finishes ``seconds`` after submission; returns (polls, detection delay).

    Each poll goes out ``late()`` seconds after it was due.
    """
    job = pacer.start(job_class)
    elapsed = 0.0
    polls = 0
    while True:
        elapsed += pacer.delay(job, elapsed) + late()
        polls += 1
        if elapsed >= seconds:
            pacer.finished(job, elapsed)
            return polls, elapsed - seconds
        pacer.polled(job, elapsed, running=True)


def test_unlearned_classes_are_polled_at_the_poll_interval() -> None:
    """Before any job of its class has finished, a job is polled every poll_interval."""
    pacer = PollPacer(0.5)
    job = pacer.start("c")
    assert pacer.delay(job, 0.0) == 0.5
    assert pacer.delay(job, 7.3) == 0.5
    assert pacer.expected("c") is None


def test_jobs_of_one_length_are_caught_within_a_step_in_two_or_three_polls() -> None:
    """With every job taking 3 s, learnt jobs are polled just before and just after 3 s."""
    pacer = PollPacer(1 / 3, rng=random.Random(5))
    polls, _ = _run_job(pacer, 3.0)
    assert polls == 9, "every 1/3 s until learnt: 9 x 1/3 s reaches 3 s"
    later = [_run_job(pacer, 3.0) for _ in range(500)][100:]
    assert max(polls for polls, _ in later) <= 3
    assert sum(polls for polls, _ in later) / len(later) <= 2.5
    # Seen done within one short, jittered interval of finishing.
    assert max(delay for _, delay in later) <= 1.5 * pacer.min_interval_s
    assert pacer.expected("c") == pytest.approx(3.0, abs=0.05)


def test_spread_out_jobs_are_caught_sooner_than_on_the_beat_in_about_four_polls() -> None:
    """Jobs of 3 s ± 30 % polled every 1/3 s are seen done sooner than on that beat would, in about four polls."""
    rng = random.Random(7)
    pacer = PollPacer(1 / 3, rng=random.Random(1))
    results = [_run_job(pacer, 3.0 * (1 + 0.3 * (2 * rng.random() - 1))) for _ in range(600)][100:]
    delays = [delay for _, delay in results]
    assert sum(delays) / len(delays) < pacer.poll_interval_s / 2
    assert max(polls for polls, _ in results) <= 10
    assert sum(polls for polls, _ in results) / len(results) <= 4.2


def test_a_late_schedule_walks_back_when_jobs_get_faster() -> None:
    """When the provider speeds up from 10 s to 4 s jobs, the first poll moves earlier within a few dozen jobs."""
    pacer = PollPacer(2.0, rng=random.Random(1))
    for _ in range(64):
        _run_job(pacer, 10.0)
    walk = [_run_job(pacer, 4.0) for _ in range(60)]
    assert walk[0][1] > 5, "the first fast job is seen late"
    assert all(delay < 0.5 and polls <= 3 for polls, delay in walk[-20:])


def _settled(pacer: PollPacer) -> float:
    """Run 100 jobs of 3 s; returns the first poll's delay the class settles on."""
    for _ in range(100):
        _run_job(pacer, 3.0)
    return pacer.delay(pacer.start("c"), 0.0)


def test_a_burst_of_first_polls_sent_late_teaches_nothing() -> None:
    """Jobs found done by first polls that went out late, one after another, leave the first rung where it was."""
    pacer = PollPacer(1 / 3, rng=random.Random(4))
    settled = _settled(pacer)
    for _ in range(12):
        late = pacer.start("c")
        # Due at its rung, sent 80 ms later (a busy loop), and the job was done by then.
        pacer.finished(late, pacer.delay(late, 0.0) + 0.08)
    assert pacer.delay(pacer.start("c"), 0.0) == pytest.approx(settled, abs=0.01)
    assert [_run_job(pacer, 3.0)[0] for _ in range(5)] == [2] * 5


def test_jobs_whose_finish_scatters_a_little_are_caught_in_two_or_three_polls() -> None:
    """Jobs of 3 s plus up to 80 ms, polled up to 20 ms after each due time, take at most 3 polls, 2.3 on average."""
    rng = random.Random(6)
    pacer = PollPacer(1 / 3, rng=random.Random(6))
    results = [_run_job(pacer, 3.0 + rng.uniform(0, 0.08), late=lambda: rng.uniform(0, 0.02)) for _ in range(600)]
    later = results[100:]
    assert max(polls for polls, _ in later) <= 3
    assert sum(polls for polls, _ in later) / len(later) <= 2.3
    assert sum(delay for _, delay in later) / len(later) < 0.05


def test_the_first_jobs_coarse_finish_times_make_way_for_those_polled_on_the_ladder() -> None:
    """A wave of jobs polled on the fixed beat seeds the ladder; a few ladder-polled jobs later, only they set it."""
    pacer = PollPacer(1 / 3, rng=random.Random(2))
    wave = [pacer.start("c") for _ in range(40)]
    for job in wave:
        # Seen running at 8/3 s and done at 3 s: known only to within a third of a second.
        pacer.polled(job, 8 / 3, running=True)
        pacer.finished(job, 3.0)
    early_first_poll = pacer.delay(pacer.start("c"), 0.0)
    assert early_first_poll < 2.85
    for _ in range(SEEDS_GIVE_WAY):
        _run_job(pacer, 3.0)
    assert pacer.delay(pacer.start("c"), 0.0) > early_first_poll + 0.05
    later = [_run_job(pacer, 3.0) for _ in range(20)]
    assert max(polls for polls, _ in later) <= 3


def test_jobs_slower_than_any_seen_get_growing_follow_ups_capped_at_the_interval() -> None:
    """Past the ladder's top, waits grow and never exceed poll_interval."""
    pacer = PollPacer(1.0, rng=random.Random(3))
    for _ in range(20):
        _run_job(pacer, 3.0)
    job = pacer.start("c")
    elapsed = 0.0
    waits = []
    for _ in range(40):
        wait = pacer.delay(job, elapsed)
        waits.append(wait)
        elapsed += wait
        pacer.polled(job, elapsed, running=True)
    follow_ups = waits[2:]
    assert follow_ups[5] > follow_ups[0]
    assert max(waits[1:]) <= 1.0
    assert waits[-1] == pytest.approx(1.0)


def test_classes_learn_separately() -> None:
    """A 10-second class does not inherit the schedule of a 5-second one."""
    pacer = PollPacer(1.0)
    for _ in range(30):
        _run_job(pacer, 5.0, job_class="short")
    assert pacer.expected("short") == pytest.approx(5.0, abs=0.6)
    assert pacer.delay(pacer.start("long"), 0.0) == 1.0


def test_poll_interval_must_be_positive() -> None:
    """A zero interval would poll in a busy loop."""
    with pytest.raises(ValueError, match="positive"):
        PollPacer(0)


def test_polls_on_the_beat_come_sooner_while_work_waits_for_a_slot() -> None:
    """Under pressure, unlearned and overdue jobs are polled at a quarter of the interval; the ladder is kept."""
    wanted = [False]
    pacer = PollPacer(10.0, pressure=lambda: wanted[0])
    first = pacer.start("c")
    assert pacer.delay(first, 0.0) == 10.0
    wanted[0] = True
    assert pacer.delay(first, 0.0) == 2.5
    for _ in range(8):
        job = pacer.start("c")
        pacer.polled(job, 28.0, running=True)
        pacer.finished(job, 32.0)
    learned = pacer.start("c")
    rung = pacer.delay(learned, 0.0)
    assert rung > 20.0, "a rung near the learned finish is not pulled in"
    assert pacer.delay(learned, 500.0) <= 2.5, "a job past the ladder is looked at on the shorter beat"


def _learn(pacer: PollPacer, durations: list[float], job_class: str = "c") -> None:
    """Teach ``pacer`` jobs that took ``durations``: each seen running a second before and done a second after."""
    # Told the provider's figures first: no job is polled on the fixed beat.
    pacer.expect(job_class, {0.5: sum(durations) / len(durations)})
    for seconds in durations:
        job = pacer.start(job_class)
        pacer.polled(job, seconds - 1.0, running=True)
        pacer.finished(job, seconds + 1.0)


def _ladder(pacer: PollPacer, job_class: str = "c") -> list[float]:
    """The poll times of a new job of ``job_class`` that never finishes, up to the last rung."""
    job = pacer.start(job_class)
    times = [pacer.delay(job, 0.0)]
    while True:
        pacer.polled(job, times[-1], running=True)
        wait = pacer.delay(job, times[-1])
        if job.beyond:
            return times
        times.append(times[-1] + wait)


def test_finishes_spread_over_several_intervals_get_evenly_spaced_rungs_up_to_the_99th_percentile() -> None:
    """Jobs of 63-117 s at a 10 s interval: rungs at most 10 s apart from a poll interval after the fastest to p99."""
    pacer = PollPacer(10.0, rng=random.Random(1))
    # 63 jobs evenly from 63 s to 117 s, and one that took 200 s.
    _learn(pacer, [63 + 54 * i / 62 for i in range(63)] + [200.0])
    times = _ladder(pacer)
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(73.0, abs=0.1), "a poll interval after the fastest, not at its tenth"
    assert times[-1] == pytest.approx(117.0, abs=0.1), "the one slow job does not stretch the ladder"
    assert max(steps) <= 10.0
    assert max(steps) - min(steps) < 1e-9


def test_a_rung_just_after_a_poll_made_on_an_older_ladder_is_skipped() -> None:
    """A job polled a second before a rung (the ladder moved since) is next polled at the rung after it."""
    pacer = PollPacer(10.0, rng=random.Random(1))
    _learn(pacer, [63 + 54 * i / 63 for i in range(64)])
    times = _ladder(pacer)
    job = pacer.start("c")
    pacer.polled(job, times[1] - 1.0, running=True)
    assert pacer.delay(job, times[1] - 1.0) == pytest.approx(times[2] - times[1] + 1.0)


def _waves(pacer: PollPacer, rows: int, slots: int, seconds: float, jitter: float, seed: int) -> tuple[float, float]:
    """Run ``rows`` jobs of ``seconds`` ± ``jitter``, ``slots`` at a time, six classes in turn; (polls, delay) per job.

    Each class is told the provider's figures for its model first; a finished job's slot
    takes the next row at once.
    """
    rng = random.Random(seed)
    figures = {q: seconds * (1 + jitter * (2 * q - 1)) for q in (0.5, 0.75, 0.9, 0.99)}
    due: list[tuple[float, int, JobPolls, float, float]] = []
    polls = 0
    delays: list[float] = []

    def submit(now: float, row: int) -> None:
        job_class = (row % 2, row % 3)
        pacer.expect(job_class, figures)
        job = pacer.start(job_class)
        takes = seconds * (1 + jitter * (2 * rng.random() - 1))
        heapq.heappush(due, (now + pacer.delay(job, 0.0), row, job, now, takes))

    for row in range(slots):
        submit(0.0, row)
    following = slots
    while due:
        now, row, job, started, takes = heapq.heappop(due)
        polls += 1
        elapsed = now - started
        if elapsed < takes:
            pacer.polled(job, elapsed, running=True)
            heapq.heappush(due, (now + pacer.delay(job, elapsed), row, job, started, takes))
            continue
        pacer.finished(job, elapsed)
        delays.append(elapsed - takes)
        if following < rows:
            submit(now, following)
            following += 1
    return polls / rows, sum(delays) / len(delays)


def test_minute_long_jittered_jobs_in_waves_take_at_most_four_polls_and_are_seen_done_sooner_than_on_the_beat() -> None:
    """150 jobs of 90 s ± 30 % in six classes, 50 at a time, 10 s interval: ≤ 4 polls a job, seen done < 5 s after."""
    for seed in range(4):
        polls, delay = _waves(PollPacer(10.0, rng=random.Random(seed)), 150, 50, 90.0, 0.3, seed)
        assert polls <= 4.0
        assert delay < 5.0, "a 10 s beat sees a job done 5 s after it finished, on average"
