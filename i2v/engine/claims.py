"""Row claims in the destination: of every run working on one destination, one creates each row's job.

Before a row's first create (or before it re-attaches to a journaled job), its run claims
the row key with a conditional write, ``claims/<key>/<NNNN>.json`` (S3 ``PutObject`` with
``If-None-Match: *``, an exclusive create in a folder): of runs racing for a row, exactly
one writes claim 1. The claim names its *owner*, one per process and run, and the owner
proves it is alive by rewriting ``claims/_owners/<owner>.json`` every :data:`HEARTBEAT_S`
(one write per process, not one per row). A claim whose owner has not written for
:data:`LEASE_S` belongs to a run that died: another run takes the row over by writing
the next claim number, again a conditional write that one run wins, and re-attaches to
the job the dead run journaled. The owner gives its claims back (deletes them) once each
row's outcome is recorded, or when it stops.

A run that finds a row claimed by a live owner never creates a job for it: it waits for
that row's record (or for the claim to come free) and reports the other run's outcome.
An owner that cannot renew its heartbeat (the destination is unreachable) stops sending
creates: to the others its claims would soon look abandoned.

Clocks: a heartbeat carries its writer's time and is judged against the reader's, so
machines whose clocks differ by more than ``LEASE_S - HEARTBEAT_S`` should not share a
destination (NTP keeps them within well under a second).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from i2v.errors import StorageError
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

CLAIMS_PREFIX = "claims/"
OWNERS_PREFIX = f"{CLAIMS_PREFIX}_owners/"
#: Seconds between an owner's heartbeats.
HEARTBEAT_S = 10.0
#: Seconds without a heartbeat after which an owner counts as gone and its claims may be taken over.
LEASE_S = 60.0
_JSON = "application/json"

Clock = Callable[[], float]


@dataclass(frozen=True)
class Held:
    """A row claimed by another live run: ``run`` (its name) works on it; check again after ``recheck_s``."""

    owner: str
    run: str | None
    recheck_s: float


@dataclass(frozen=True)
class Claimed:
    """This run holds the row's claim number ``number``; ``took_over`` names the dead owner it replaced."""

    number: int
    took_over: str | None = None


def owner_id(run: str) -> str:
    """A new owner's id: the run, this machine and process, and a random part (safe as a key)."""
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())[:40] or "host"
    return f"{run}.{host}.{os.getpid()}.{secrets.token_hex(3)}"


class RowClaims:
    """One owner's claims in a destination. Blocking: called off the event loop."""

    def __init__(self, dest: Destination, *, run: str, owner: str | None = None, clock: Clock = time.time) -> None:
        self.dest = dest
        self.run = run
        self.owner = owner or owner_id(run)
        self._clock = clock
        self._beat_at: float | None = None
        self._held: dict[str, int] = {}
        # Claims held across a gap in the heartbeat long enough for others to take them over.
        self._doubtful: set[str] = set()

    # --- the owner's heartbeat -----------------------------------------------------

    def beat(self) -> None:
        """Write this owner's heartbeat (raises :class:`StorageError` if it cannot be written)."""
        now = self._clock()
        body = json.dumps({"owner": self.owner, "run": self.run, "at": now}).encode()
        self.dest.put_bytes(owner_key(self.owner), body, _JSON, durable=False)
        if self._beat_at is not None and now - self._beat_at >= LEASE_S / 2:
            self._doubtful.update(self._held)
        self._beat_at = now

    def fresh(self) -> bool:
        """Whether this owner's last heartbeat is recent enough for others to see it alive for a while."""
        return self._beat_at is not None and self._clock() - self._beat_at < LEASE_S / 2

    def retire(self) -> None:
        """Give back every claim still held and remove the heartbeat (this process is done with the run)."""
        for row_key in list(self._held):
            self.release(row_key)
        try:
            self.dest.delete(owner_key(self.owner))
        except StorageError as exc:
            log.warning("owner %s: heartbeat not removed (%s); it expires by itself", self.owner, exc)

    # --- claims ----------------------------------------------------------------------

    def claim(self, row_key: str) -> Claimed | Held:
        """Claim ``row_key``: this owner's now (new, or taken over from a gone owner), or held by a live one."""
        number = self._held.get(row_key)
        if number is not None and row_key not in self._doubtful:
            return Claimed(number)
        if number is not None:
            # This owner went quiet for a while: another run may have taken the row over.
            self._doubtful.discard(row_key)
            current, holder = self._current(row_key)
            if (current, holder) == (number, self.owner):
                return Claimed(number)
            del self._held[row_key]
            alive, run = self._alive(holder)
            if alive:
                return Held(holder, run, recheck_s=HEARTBEAT_S)
        if self._write(row_key, 1):
            return Claimed(1)
        while True:
            number, holder = self._current(row_key)
            if number == 0:
                # The claims were given back between our write and our look: try the first again.
                if self._write(row_key, 1):
                    return Claimed(1)
                continue
            if holder == self.owner:
                self._held[row_key] = number
                return Claimed(number)
            alive, run = self._alive(holder)
            if alive:
                return Held(holder, run, recheck_s=HEARTBEAT_S)
            if self._write(row_key, number + 1):
                log.info("row %s: claim of %s (no heartbeat for %.0fs) taken over", row_key, holder, LEASE_S)
                return Claimed(number + 1, took_over=holder)
            # Another run took it over first: look again.

    def release(self, row_key: str) -> None:
        """Give the row's claim back (its outcome is recorded, or this run stops); never fails the row."""
        number = self._held.pop(row_key, None)
        self._doubtful.discard(row_key)
        if number is None:
            return
        try:
            for key in sorted(self.dest.list_sizes(claim_folder(row_key))):
                self.dest.delete(key)
        except StorageError as exc:
            log.warning("row %s: claim not given back (%s); it expires with this run's heartbeat", row_key, exc)

    @property
    def held(self) -> int:
        """Rows this owner holds claims on."""
        return len(self._held)

    # --- internals ------------------------------------------------------------------

    def _write(self, row_key: str, number: int) -> bool:
        body = json.dumps({"owner": self.owner, "run": self.run, "at": self._clock()}).encode()
        if self.dest.put_if_absent(claim_key(row_key, number), body, _JSON):
            self._held[row_key] = number
            return True
        return False

    def _current(self, row_key: str) -> tuple[int, str]:
        """The highest claim of the row and its owner; (0, "") if it has none."""
        numbers = sorted(_number(key) for key in self.dest.list_sizes(claim_folder(row_key)))
        numbers = [n for n in numbers if n > 0]
        if not numbers:
            return 0, ""
        raw = self.dest.get_bytes(claim_key(row_key, numbers[-1]))
        if raw is None:
            return 0, ""
        try:
            return numbers[-1], str(json.loads(raw)["owner"])
        except (ValueError, KeyError, TypeError):
            # A claim written in part is its writer's: treat it as held by an unknown owner,
            # which is gone once its lease has passed (judged from the object, not the name).
            return numbers[-1], ""

    def _alive(self, owner: str) -> tuple[bool, str | None]:
        """Whether ``owner`` wrote a heartbeat within the lease, and its run."""
        if not owner:
            return False, None
        return _heartbeat(self.dest, owner, self._clock())


def live_claims(dest: Destination, *, now: float | None = None) -> dict[str, str | None]:
    """Rows claimed by an owner alive now (a heartbeat within :data:`LEASE_S`): row key → the owner's run.

    Read-only, for a look at the destination from outside any run: one listing of
    ``claims/``, one read per claimed row and one per owner.
    """
    at = time.time() if now is None else now
    highest: dict[str, int] = {}
    for key in dest.list_sizes(CLAIMS_PREFIX):
        rest = key[len(CLAIMS_PREFIX) :]
        if key.startswith(OWNERS_PREFIX) or rest.count("/") != 1:
            continue
        row_key = rest.split("/", 1)[0]
        highest[row_key] = max(highest.get(row_key, 0), _number(key))
    owners: dict[str, tuple[bool, str | None]] = {}
    held: dict[str, str | None] = {}
    for row_key, number in sorted(highest.items()):
        if number < 1:
            continue
        raw = dest.get_bytes(claim_key(row_key, number))
        if raw is None:
            continue  # given back meanwhile
        try:
            owner = str(json.loads(raw)["owner"])
        except (ValueError, KeyError, TypeError):
            continue  # written in part: its owner is not known, so not known to be alive
        if owner not in owners:
            owners[owner] = _heartbeat(dest, owner, at)
        alive, run = owners[owner]
        if alive:
            held[row_key] = run
    return held


def _heartbeat(dest: Destination, owner: str, now: float) -> tuple[bool, str | None]:
    """Whether ``owner``'s heartbeat is within the lease at ``now``, and its run."""
    raw = dest.get_bytes(owner_key(owner))
    if raw is None:
        return False, None
    try:
        data = json.loads(raw)
        at, run = float(data["at"]), data.get("run")
    except (ValueError, KeyError, TypeError):
        return True, None  # being rewritten right now: an owner that writes is alive
    return now - at < LEASE_S, str(run) if run is not None else None


def claim_folder(row_key: str) -> str:
    """Where the claims of ``row_key`` live under the destination."""
    return f"{CLAIMS_PREFIX}{row_key}/"


def claim_key(row_key: str, number: int) -> str:
    """The key of claim ``number`` of ``row_key``."""
    return f"{claim_folder(row_key)}{number:04d}.json"


def owner_key(owner: str) -> str:
    """Where ``owner``'s heartbeat lives."""
    return f"{OWNERS_PREFIX}{owner}.json"


def _number(key: str) -> int:
    stem = key.rsplit("/", 1)[-1].removesuffix(".json")
    return int(stem) if stem.isdigit() else 0
