"""What a job costs, in credits.

This is the emulator's own price list, not the vendor's (whose prices change and differ
per model): it only has to be plausible, so that spend reports, budgets and the
out-of-credits path can be exercised. Price grows with resolution and duration and is
taken from the balance in full when the job is accepted, never refunded (the harsher
reading: a client cannot count on a refund). What the service *reports* follows the
vendor: the cost headers and ``GET /v2/logs`` show a job's price once it is
``completed``, and nothing for a job that fails (see :mod:`i2v.emulator.tracing`).
"""

from __future__ import annotations

#: Credits per second of video, by the short side of the requested resolution.
CREDITS_PER_SECOND: dict[str, int] = {"480p": 26_250, "720p": 52_500, "1080p": 105_000}


def price(resolution: str | None, seconds: int) -> float:
    """Credits charged for a video of ``seconds`` at ``resolution`` (case-insensitive)."""
    key = (resolution or "1080p").lower()
    rate = CREDITS_PER_SECOND.get(key, CREDITS_PER_SECOND["1080p"])
    return float(rate * seconds)
