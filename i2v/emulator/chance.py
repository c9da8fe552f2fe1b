"""Deterministic randomness: every decision is a hash of (seed, what, subject).

Drawing from a shared random generator would make each decision depend on how many
draws came before it, so two runs with the same seed would diverge as soon as their
requests interleaved differently (which they do: clients are concurrent). Hashing a
stable description of the decision instead gives each one its own, order-independent
draw.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def canonical(data: Any) -> str:
    """A stable text form of a JSON value: sorted keys, no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(seed: int, what: str, subject: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{what}\x00{subject}".encode()).digest()


def uniform(seed: int, what: str, subject: str) -> float:
    """A number in [0, 1), fixed by its arguments."""
    return int.from_bytes(_digest(seed, what, subject)[:8], "big") / 2**64


def happens(seed: int, what: str, subject: str, rate: float) -> bool:
    """Whether an event of probability ``rate`` happens for this subject."""
    return rate > 0 and uniform(seed, what, subject) < rate


def pick(seed: int, what: str, subject: str, options: Sequence[T]) -> T:
    """One of ``options``, fixed by the other arguments."""
    return options[int(uniform(seed, what, subject) * len(options))]


def derived_uuid(seed: int, what: str, subject: str) -> str:
    """A version-4-shaped UUID string, fixed by its arguments."""
    return str(uuid.UUID(bytes=_digest(seed, what, subject)[:16], version=4))


def integer(seed: int, what: str, subject: str) -> int:
    """A non-negative 32-bit integer, fixed by its arguments."""
    return int.from_bytes(_digest(seed, what, subject)[:4], "big")
