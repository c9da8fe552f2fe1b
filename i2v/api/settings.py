"""Configuration read at the edge: environment variables, never flow parameters.

The API key lives in a :class:`Secret`, whose ``repr`` and ``str`` are masked, so a
settings object can be logged, put in an exception or shown in a debugger without
leaking the key. Only :meth:`Secret.reveal` gives the value, and only the HTTP client
calls it, to build the ``Authorization`` header.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from i2v.errors import ConfigError

DEFAULT_BASE_URL = "https://api.aimlapi.com"


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # A secret must never be pickled into a Prefect result or parameter.
        raise TypeError("Secret values are not serialisable")


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and how to authenticate; from ``AIMLAPI_*`` variables."""

    api_key: Secret
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        key = env.get("AIMLAPI_API_KEY", "").strip()
        if not key:
            raise ConfigError("AIMLAPI_API_KEY is not set: export your AI/ML API key first")
        base_url = base_url_from_env(env)
        timeout = _float(env, "AIMLAPI_TIMEOUT_S", 30.0)
        return cls(api_key=Secret(key), base_url=base_url, timeout_s=timeout)


def base_url_from_env(env: Mapping[str, str] | None = None) -> str:
    """The API's base URL (``AIMLAPI_BASE_URL`` or the vendor's), without a version segment; no key needed."""
    env = os.environ if env is None else env
    base_url = env.get("AIMLAPI_BASE_URL", "").strip() or DEFAULT_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"AIMLAPI_BASE_URL must be an http(s) URL, got {base_url!r}")
    # The vendor's samples write the base URL with its version segment; paths here carry it.
    return base_url.rstrip("/").removesuffix("/v2")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value
