"""Request-rate limiting: a token bucket and a sliding window.

The token bucket (``requests_per_second``) paces the inference requests; the sliding
window enforces a limit published as a count per period (``/v2/logs``: 200 a minute).
"""

from __future__ import annotations

from collections import deque


class TokenBucket:
    """``rate`` requests per second on average, with bursts of up to ``burst``."""

    def __init__(self, rate: float, *, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._updated = now

    def take(self, now: float) -> float:
        """Spend one token; returns 0 on success, else the seconds until one is available."""
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


class SlidingWindow:
    """At most ``limit`` requests in any ``seconds`` long stretch of time.

    Only the requests let through count: one refused is not served, so it does not
    push the next allowed one further out.
    """

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.limit = limit
        self.seconds = seconds
        self._taken: deque[float] = deque()

    def take(self, now: float) -> float:
        """Count one request; returns 0 if it may go, else the seconds until one may."""
        taken = self._taken
        while taken and taken[0] <= now - self.seconds:
            taken.popleft()
        if len(taken) < self.limit:
            taken.append(now)
            return 0.0
        return taken[0] + self.seconds - now
