"""What a job costs, in credits.

A model the package's dated price table lists (:mod:`i2v.api.prices`, the vendor's
prices) costs what the table says, so that a run's estimate and what it was charged
agree as they would on the API. Any other model costs a plausible price from the
emulator's own list, so that spend reports, budgets and the out-of-credits path can be
exercised on every model. Price grows with resolution and duration and is
taken from the balance in full when the job is accepted, never refunded (the harsher
reading: a client cannot count on a refund). What the service *reports* follows the
vendor: the cost headers and ``GET /v2/logs`` show a job's price once it is
``completed``, and nothing for a job that fails (see :mod:`i2v.emulator.tracing`).
"""

from __future__ import annotations

from i2v.api import prices

#: Credits per second of video, by the short side of the requested resolution.
CREDITS_PER_SECOND: dict[str, int] = {"480p": 26_250, "720p": 52_500, "1080p": 105_000}


def price(resolution: str | None, seconds: int, *, model: str | None = None) -> float:
    """Credits charged for a video of ``seconds`` at ``resolution`` (case-insensitive) of ``model``."""
    key = (resolution or "1080p").lower()
    if model is not None:
        quoted = prices.estimate(model, {"resolution": key, "duration": seconds})
        if quoted.known and quoted.listed:
            return quoted.credits
    rate = CREDITS_PER_SECOND.get(key, CREDITS_PER_SECOND["1080p"])
    return float(rate * seconds)
