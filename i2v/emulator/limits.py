"""Request-rate limiting: a token bucket shared by all API requests."""

from __future__ import annotations


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
