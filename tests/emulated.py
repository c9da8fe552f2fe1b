"""A handle on a running emulator for tests: its URL, key, counters and fault queue."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from i2v.api.client import VideoApi, make_http_client
from i2v.api.settings import ApiSettings, Secret
from i2v.emulator.config import EmulatorConfig
from i2v.emulator.server import running_emulator

TEST_KEY = "sk-test-3f9a1c7e5b2d4e6f8a0b"
FAST = EmulatorConfig(api_key=TEST_KEY, generation_seconds=0.3, generation_jitter=0.0, short_side=64, fps=4)


@dataclass
class Emulator:
    """The emulator a test talks to."""

    base_url: str
    api_key: str

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.base_url}/_emulator/stats", timeout=5)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def fault(
        self, on: str, status: int, *, count: int = 1, retry_after: float | None = None, after_create: bool = False
    ) -> None:
        fault = {"on": on, "status": status, "count": count, "retry_after": retry_after, "after_create": after_create}
        httpx.post(f"{self.base_url}/_emulator/faults", json=[fault], timeout=5).raise_for_status()

    def settings(self) -> ApiSettings:
        return ApiSettings(api_key=Secret(self.api_key), base_url=self.base_url, timeout_s=10)

    def api(self) -> VideoApi:
        """An API client for this emulator (an ``httpx.AsyncClient`` underneath)."""
        return VideoApi(make_http_client(self.settings()), Secret(self.api_key))

    def created(self) -> int:
        """Jobs the emulator accepted (and billed), whatever their status."""
        return sum(self.stats()["jobs"].values())


@contextmanager
def emulator(**overrides: Any) -> Iterator[Emulator]:
    """Run an emulator with the fast test configuration plus ``overrides``."""
    config = replace(FAST, **overrides)
    with running_emulator(config) as base_url:
        yield Emulator(base_url, config.api_key)
