"""An inbox of input files, each processed once however many runs look at it at the same time.

Layout under the inbox (a local folder or an S3 prefix)::

    <name>.csv                        files dropped by people (names starting with "." are ignored)
    _i2v/claims/<name>/<n>.json       claim number n (1, 2, ...) of a file: which run took it, when
    _i2v/done/<name>.json             written when a run has processed the file: its outcome

A claim is a conditional write (:meth:`~i2v.storage.destination.Destination.put_if_absent`): of runs
racing for a file, exactly one writes its claim 1 and processes it. Claims are never
deleted and lock nothing: when the run holding the latest claim has ended without
marking the file done (it crashed, failed or was cancelled), a later run takes the file
over by writing the next claim number, again a conditional write that one run wins.
Whether that run has ended is the orchestrator's knowledge, not the inbox's: see
:func:`next_claim`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from i2v.storage.destination import Destination

#: Where the inbox keeps its own objects, under the inbox's prefix or folder.
STATE = "_i2v"
CLAIMS = f"{STATE}/claims"
DONE = f"{STATE}/done"
INPUT_SUFFIXES = (".csv",)
_JSON = "application/json"


@dataclass(frozen=True)
class Claim:
    """Claim number ``number`` of the inbox file ``name``, written by run ``owner``."""

    name: str
    number: int
    owner: str
    claimed_at: float


def claim_key(name: str, number: int) -> str:
    """Where claim ``number`` of the file ``name`` lives."""
    return f"{CLAIMS}/{name}/{number:04d}.json"


def done_key(name: str) -> str:
    """Where the record that the file ``name`` is done lives."""
    return f"{DONE}/{name}.json"


def waiting(inbox: Destination, suffixes: tuple[str, ...] = INPUT_SUFFIXES) -> list[str]:
    """Input files in the inbox that are not marked done, by name."""
    keys = inbox.list_sizes("")
    done = {key[len(DONE) + 1 : -len(".json")] for key in keys if key.startswith(f"{DONE}/") and key.endswith(".json")}
    return sorted(
        key
        for key in keys
        if not key.startswith(f"{STATE}/")
        and key.lower().endswith(suffixes)
        and not key.rsplit("/", 1)[-1].startswith(".")
        and key not in done
    )


def is_done(inbox: Destination, name: str) -> bool:
    """Whether a run has processed the file."""
    return inbox.size(done_key(name)) is not None


def latest_claim(inbox: Destination, name: str) -> Claim | None:
    """The file's claim with the highest number, or None if nobody has claimed it."""
    numbers = []
    for key in inbox.list_sizes(f"{CLAIMS}/{name}/"):
        stem = key.rsplit("/", 1)[-1].removesuffix(".json")
        if stem.isdigit():
            numbers.append(int(stem))
    if not numbers:
        return None
    number = max(numbers)
    raw = inbox.get_bytes(claim_key(name, number))
    data: dict[str, Any] = json.loads(raw) if raw else {}
    return Claim(name, number, str(data.get("owner", "")), float(data.get("claimed_at", 0.0)))


def next_claim(latest: Claim | None, *, owner_ended: bool, max_claims: int) -> int | None:
    """The claim number to try for a file, or None to leave it alone.

    ``owner_ended`` says whether the run holding ``latest`` has ended (any final state,
    or unknown to the orchestrator). A file whose run is still going is left to it; one
    claimed ``max_claims`` times without being done is given up (its claims say by whom).
    """
    if latest is None:
        return 1
    if not owner_ended or latest.number >= max_claims:
        return None
    return latest.number + 1


def try_claim(inbox: Destination, name: str, number: int, owner: str, *, now: float | None = None) -> Claim | None:
    """Write claim ``number`` of the file for ``owner``; None if another run wrote it first."""
    claim = Claim(name, number, owner, time.time() if now is None else now)
    body = json.dumps(asdict(claim)).encode()
    return claim if inbox.put_if_absent(claim_key(name, number), body, _JSON) else None


def mark_done(inbox: Destination, claim: Claim, outcome: Mapping[str, Any]) -> None:
    """Record that the claim's run processed the file, and what came of it."""
    record = {**asdict(claim), "done_at": time.time(), **outcome}
    inbox.put_bytes(done_key(claim.name), json.dumps(record, default=str).encode(), _JSON)


def read_done(inbox: Destination, name: str) -> dict[str, Any] | None:
    """What the run that processed the file recorded, or None if no run has."""
    raw = inbox.get_bytes(done_key(name))
    if raw is None:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data
