"""When to poll a job: near its expected finish, from the provider's figures, then from the run's own jobs.

Polling on a fixed beat wastes requests early and reacts late: a slot whose job has
finished stays idle until the next poll notices. :class:`PollPacer` keeps, per *job
class* (model, duration, resolution), a window of how long recent jobs took, and polls
each job on a *ladder*: the first rung just before the fastest tenth of recent jobs
finished, the others spread evenly over the remaining finishes up to the slowest, about
one poll interval apart (ten rungs at most). A job is then seen done about half a poll
interval after it finished, on average, as on the fixed beat, but it is not polled
before the first jobs of its kind finish: minute-long jobs that vary by a few tens of
seconds take three or four polls instead of nine. A class whose jobs all take the same
time gets one or two rungs, just before and at that time.

Where finishes spread over more than :data:`MIN_STEPS` poll intervals, the ladder is
*wide*: its first rung stands just before the fastest quarter finished, but no later than
a poll interval after the fastest job (none waits longer than on the fixed beat), its top
rung where 99 % of recent jobs finished, and the rungs between stand evenly apart, at
most a poll interval. Rungs at shares of a few dozen jobs would bunch where those
happen to cluster, and a first rung at the fastest tenth costs every other job a poll.

A job still running past the top rung (slower than nearly every recent one) is polled at
a short interval with jitter, each wait a little longer than the last, up to the run's
poll interval. The ladder moves as jobs finish: a job whose next rung comes less than
half a step after its last poll (made on the ladder as it was) skips that rung.

Before a class has finished jobs of its own, :meth:`PollPacer.expect` gives it what the
provider says its model takes (``GET /models/metrics``: p50 to p99 of recent requests).
Those figures stand for :data:`PRIOR_WEIGHT` jobs and give way one by one to the class's
own finished jobs: the first jobs to finish are the fastest of their wave, and a ladder
drawn from them alone would be too early and too narrow for the rest.

A class with neither is polled every ``poll_interval_s`` at first. Those first jobs are
known to have finished only within a poll interval, so they seed the ladder and make way
for the jobs polled on it as soon as :data:`SEEDS_GIVE_WAY` of those have finished:
otherwise, with a short run or many classes, the coarse first guesses would set the
first rung for much of the run.

How long a job took is only known within the gap between two polls: the last one that
saw it running and the one that saw it done. The midpoint of that gap is the estimate.
A job already done at its first poll says only that it finished before that poll:
- If the poll went out late (a busy loop, a wait for a connection), it teaches nothing.
  Polls go out late in bursts, when many jobs finish at once.
- Sent on time, on its own it is most often a job a little faster than the rest: its
  estimate is put just before the poll.
- Two in a row say that jobs got faster: each is then put a quarter earlier, so the
  ladder walks back to the real finish within a few dozen jobs instead of staying late.

Were every such job put a quarter earlier, a tenth of the window holding them would
pull the first rung far ahead of every finish and cost each later job a poll.

While work waits for a slot (``pressure``: the admission limiter's queue, or a shared
limit other workers wait on), a job polled on the fixed beat or past the ladder holds a
slot someone wants: those polls then come :data:`PRESSED_SHARE` of the interval apart,
so a finished job frees its slot sooner.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

#: Jobs remembered per class; old ones fall out, so a provider that slows down is followed.
WINDOW = 64
#: The first rung: just before this share of recent jobs finished; also the most rungs a ladder has (1 / share).
RUNG_SHARE = 0.1
#: Rungs above the first split the rest of the finishes into at least this many steps, as
#: long as each step is longer than ``min_interval_s`` and shorter than the poll interval.
MIN_STEPS = 4
#: No two rungs further apart than this many poll intervals.
MAX_GAP = 1.25
#: The top rung of a wide ladder: where this share of recent jobs finished, so that the
#: slowest one of a window does not set it.
TOP_SHARE = 0.99
#: The first rung of a wide ladder: just before this share of recent jobs finished, but no
#: later than a poll interval after the fastest. A rung spent on the fastest tenth alone
#: costs the other nine tenths a poll each.
WIDE_FIRST_SHARE = 0.25
#: Jobs the provider's figures for a class stand for, until the class's own jobs replace them.
PRIOR_WEIGHT = 16
#: Polls past the ladder start at this share of the typical duration (before clamping)...
FOLLOW_UP_SHARE = 0.015
#: ...and each waits this much longer than the one before.
FOLLOW_UP_GROWTH = 1.3
#: Follow-ups vary by up to this share either way, so jobs started together spread out.
JITTER = 0.1
#: A job done at its first poll right after another one was: its estimate, as a share of that poll's time.
EARLY_SHARE = 0.75
#: A poll sent more than this share of ``min_interval_s`` after it was due went out late.
LATE_SHARE = 0.5
#: Jobs polled on the ladder that replace the estimates of the jobs polled before it existed.
SEEDS_GIVE_WAY = 8
#: Polls on the fixed beat, or past the ladder, while work waits for a slot: this share of the interval.
PRESSED_SHARE = 0.25
#: A rung less than this share of its step after the job's last poll is skipped for the next.
SKIP_SHARE = 0.5


@dataclass
class _ClassTiming:
    estimates: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    #: Estimates of jobs that started before the class had a ladder (see the module docstring).
    seeds: list[float] = field(default_factory=list)
    #: Poll times, in seconds after submission, ascending.
    ladder: list[float] = field(default_factory=list)
    follow_up_s: float = 0.0
    #: The last job of the class to finish was already done at its first poll.
    done_at_first_poll: bool = False
    #: Durations drawn evenly from what the provider says the model takes, ascending.
    prior: list[float] = field(default_factory=list)

    def ordered(self) -> list[float]:
        """Every estimate the class holds, seeds and what is left of the prior included, ascending."""
        learned = [*self.seeds, *self.estimates]
        kept = PRIOR_WEIGHT - len(learned)
        if kept > 0 and self.prior:
            learned.extend(_thin(self.prior, kept))
        return sorted(learned)


@dataclass
class JobPolls:
    """What one job's polls have seen so far; kept by the caller and passed back in."""

    job_class: Hashable
    #: Started before its class had a ladder: polled on the fixed beat, at first.
    seed: bool = False
    #: Seconds since submission of the last poll that saw the job running.
    last_running_s: float | None = None
    #: Polls made past the top of the ladder.
    beyond: int = 0
    #: Seconds since submission at which the next poll was due.
    due_s: float | None = None


class PollPacer:
    """Schedules polls for every job of a run and learns from the ones that finish."""

    def __init__(
        self,
        poll_interval_s: float,
        *,
        min_interval_s: float = 0.05,
        rng: random.Random | None = None,
        pressure: Callable[[], bool] | None = None,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self.poll_interval_s = poll_interval_s
        self.min_interval_s = min(min_interval_s, poll_interval_s)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._classes: dict[Hashable, _ClassTiming] = {}
        self._pressure = pressure

    def expect(self, job_class: Hashable, quantiles: Mapping[float, float]) -> None:
        """What jobs of ``job_class`` take, by quantile (``{0.5: 92.0, 0.9: 130.0, ...}``, seconds).

        Used until the class's own jobs replace it; ignored once the class has a schedule.
        """
        if job_class in self._classes:
            return
        prior = _prior(quantiles)
        if not prior:
            return
        timing = self._classes[job_class] = _ClassTiming(prior=prior)
        self._rebuild(timing)

    def start(self, job_class: Hashable) -> JobPolls:
        """A new job of ``job_class``: its poll record."""
        return JobPolls(job_class, seed=job_class not in self._classes)

    def delay(self, job: JobPolls, elapsed_s: float) -> float:
        """Seconds to wait before the job's next poll, ``elapsed_s`` after its submission."""
        wait = self._wait(job, elapsed_s)
        job.due_s = elapsed_s + wait
        return wait

    def _wait(self, job: JobPolls, elapsed_s: float) -> float:
        # The longest wait on the fixed beat: shorter while a slot is wanted.
        beat = self.poll_interval_s
        if self._pressure is not None and self._pressure():
            beat = max(self.min_interval_s, beat * PRESSED_SHARE)
        timing = self._classes.get(job.job_class)
        if timing is None:
            return beat
        ladder = timing.ladder
        rung = bisect.bisect_right(ladder, elapsed_s + self.min_interval_s / 2)
        # The ladder moves as jobs finish: a job polled at a rung of the old one would be
        # polled again moments later at a rung of the new one, a poll that learns nothing.
        if (
            elapsed_s > 0
            and 0 < rung < len(ladder) - 1
            and ladder[rung] - elapsed_s < SKIP_SHARE * (ladder[rung] - ladder[rung - 1])
        ):
            rung += 1
        if rung < len(ladder):
            return ladder[rung] - elapsed_s
        wait = timing.follow_up_s * FOLLOW_UP_GROWTH ** max(0, job.beyond - 1)
        wait *= 1 + JITTER * (2 * self._rng.random() - 1)
        return min(beat, max(self.min_interval_s, wait))

    def polled(self, job: JobPolls, elapsed_s: float, *, running: bool) -> None:
        """Note a poll's answer: still running (or queued), or not."""
        timing = self._classes.get(job.job_class)
        if timing is not None and timing.ladder and elapsed_s >= timing.ladder[-1]:
            job.beyond += 1
        if running:
            job.last_running_s = elapsed_s

    def finished(self, job: JobPolls, elapsed_s: float) -> None:
        """The job was seen finished ``elapsed_s`` after submission: learn from it."""
        seen_running = job.last_running_s
        due = job.due_s
        if seen_running is None and due is not None and elapsed_s - due > LATE_SHARE * self.min_interval_s:
            return
        timing = self._classes.setdefault(job.job_class, _ClassTiming())
        if seen_running is not None:
            estimate = (seen_running + elapsed_s) / 2
        elif job.seed or timing.done_at_first_poll:
            estimate = elapsed_s * EARLY_SHARE
        else:
            estimate = max(0.0, elapsed_s - self.min_interval_s / 2)
        timing.done_at_first_poll = seen_running is None
        if job.seed and len(timing.estimates) < SEEDS_GIVE_WAY:
            timing.seeds.append(estimate)
        else:
            timing.estimates.append(estimate)
            if len(timing.estimates) >= SEEDS_GIVE_WAY:
                timing.seeds.clear()
        self._rebuild(timing)

    def expected(self, job_class: Hashable) -> float | None:
        """The median duration learned for ``job_class``, if any."""
        timing = self._classes.get(job_class)
        if timing is None:
            return None
        ordered = timing.ordered()
        return ordered[len(ordered) // 2]

    def _rebuild(self, timing: _ClassTiming) -> None:
        ordered = timing.ordered()
        count = len(ordered)
        typical = ordered[count // 2]
        timing.follow_up_s = min(self.poll_interval_s, max(self.min_interval_s, FOLLOW_UP_SHARE * typical))

        def at(share: float) -> float:
            return ordered[min(count - 1, max(0, round(share * count) - 1))]

        # Just before the first finishes: it is then seen running, and a rung later done.
        first = max(0.0, at(RUNG_SHARE) - self.min_interval_s / 2)
        top = at(TOP_SHARE)
        if top - first > MIN_STEPS * self.poll_interval_s:
            first = max(first, min(at(WIDE_FIRST_SHARE), ordered[0] + self.poll_interval_s) - self.min_interval_s / 2)
            top = max(top, first)
            # Finishes spread over several poll intervals: rungs evenly apart, none more
            # than an interval, up to where nearly all jobs are done. Rungs at shares of a
            # few dozen jobs would bunch where those happen to cluster, a poll each.
            steps = math.ceil((top - first) / self.poll_interval_s)
            timing.ladder = [first + (top - first) * k / steps for k in range(steps + 1)]
            return
        spread = ordered[-1] - first
        # At most a poll interval apart: seen done as soon as on the fixed beat, on average,
        # in as few polls as that allows. Finishes spread over less than a few intervals get
        # closer rungs: a few polls either way, each one cheap next to a slot left idle.
        gap = max(self.min_interval_s, min(self.poll_interval_s, spread / MIN_STEPS))
        steps = min(max(1, round(spread / gap)), max(1, round(1 / RUNG_SHARE) - 1))
        ladder = [first]
        for k in range(1, steps + 1):
            rung = at(RUNG_SHARE + k * (1 - RUNG_SHARE) / steps)
            # Where few jobs finish, rungs at shares of them would stand far apart: none
            # much more than a poll interval apart, so a job there is not seen late.
            holes = math.ceil((rung - ladder[-1]) / (MAX_GAP * self.poll_interval_s)) - 1
            for h in range(1, holes + 1):
                ladder.append(ladder[-1] + (rung - ladder[-1]) / (holes + 2 - h))
            if rung - ladder[-1] >= self.min_interval_s:
                ladder.append(rung)
        timing.ladder = ladder


def _prior(quantiles: Mapping[float, float]) -> list[float]:
    """:data:`PRIOR_WEIGHT` durations spread as ``quantiles`` say, ascending; empty if they say nothing usable.

    The provider reports the median and the slow tail (p75 to p99); below the median the
    spread is taken to mirror the one above it, which puts the first rung early rather
    than late when the real fast side is tighter.
    """
    known = {q: t for q, t in quantiles.items() if 0 < q < 1 and math.isfinite(t) and t > 0}
    if 0.5 not in known:
        return []
    median = known[0.5]
    points = dict(known)
    for q, t in known.items():
        if q > 0.5 and 1 - q not in known:
            points[1 - q] = max(median * 0.1, 2 * median - t)
    ordered = sorted(points.items())
    # Percentiles never fall as they rise.
    for i in range(1, len(ordered)):
        if ordered[i][1] < ordered[i - 1][1]:
            ordered[i] = (ordered[i][0], ordered[i - 1][1])
    shares = [q for q, _ in ordered]
    times = [t for _, t in ordered]
    drawn = []
    for i in range(PRIOR_WEIGHT):
        share = (i + 0.5) / PRIOR_WEIGHT
        j = bisect.bisect_left(shares, share)
        if j == 0:
            drawn.append(times[0])
        elif j == len(shares):
            drawn.append(times[-1])
        else:
            low, high = shares[j - 1], shares[j]
            drawn.append(times[j - 1] + (times[j] - times[j - 1]) * (share - low) / (high - low))
    return drawn


def _thin(ordered: list[float], keep: int) -> list[float]:
    """``keep`` values spread evenly over ``ordered`` (ascending), so what is left keeps its shape."""
    if keep >= len(ordered):
        return list(ordered)
    return [ordered[int((i + 0.5) * len(ordered) / keep)] for i in range(keep)]
