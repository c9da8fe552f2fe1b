"""The journal: which generation each piece of work started, durable before it costs money.

One small JSON object per row key, ``journal/<key>.json``, in the destination itself (so
the state travels with the outputs and any machine can resume). It goes through two
states:

* ``sending`` — written just before a create is sent. If the process dies, or the
  answer is lost, from here on, nobody can tell whether the provider started (and
  billed) a job: the row is *submit unknown*, and is never sent again on its own.
  A create that certainly made no job (429, connection refused) withdraws the entry.
* ``submitted`` — written as soon as the create answers with a generation id, before
  polling. A rerun re-attaches to that job instead of paying for a second one.

Keeping this in the destination rather than in Prefect's database (whose ephemeral mode
drops records at exit) is what makes a crash cost a re-attach, not a payment.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Literal

from i2v.api.models import RouteName
from i2v.engine.offload import Runs
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal/"

EntryState = Literal["sending", "submitted"]


@dataclass(frozen=True)
class Submission:
    """A generation started for a row key."""

    row_key: str
    model: str
    route: RouteName
    generation_id: str
    submitted_at: float
    attempts: int
    run: str | None = None
    reattached: bool = False


@dataclass(frozen=True)
class Entry:
    """What the journal holds for a row key."""

    state: EntryState
    row_key: str
    model: str
    route: RouteName
    at: float
    run: str | None = None
    generation_id: str | None = None
    attempts: int = 0

    def submission(self) -> Submission | None:
        """The started job, if the entry names one."""
        if self.state != "submitted" or not self.generation_id:
            return None
        return Submission(
            row_key=self.row_key,
            model=self.model,
            route=self.route,
            generation_id=self.generation_id,
            submitted_at=self.at,
            attempts=self.attempts,
            run=self.run,
        )


class Journal:
    """Journal entries kept under a destination; storage calls run through ``offload``."""

    def __init__(self, dest: Destination, offload: Runs) -> None:
        self.dest = dest
        self._offload = offload

    async def sending(self, row_key: str, *, model: str, route: RouteName, at: float, run: str | None) -> None:
        """Record the intent to send a create for ``row_key`` (before sending it)."""
        entry = Entry("sending", row_key, model, route, at, run)
        await self._write(entry)

    async def withdraw(self, row_key: str) -> None:
        """The create certainly started no job: forget the intent."""
        await self.forget(row_key)

    async def save(self, submission: Submission) -> None:
        """Record the job a create started."""
        entry = Entry(
            "submitted",
            submission.row_key,
            submission.model,
            submission.route,
            submission.submitted_at,
            submission.run,
            submission.generation_id,
            submission.attempts,
        )
        await self._write(entry)

    async def load(self, row_key: str) -> Entry | None:
        return await self._offload(self.read, row_key)

    def read(self, row_key: str) -> Entry | None:
        """The entry for ``row_key``, read in the calling thread."""
        raw = self.dest.get_bytes(journal_key(row_key))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if "state" not in data:
                # Entries written before intents were journaled name a started job.
                data["state"] = "submitted"
                data["at"] = data.pop("submitted_at")
            return Entry(**data)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable journal entry for %s: %s", row_key, exc)
            return None

    async def forget(self, row_key: str) -> None:
        """Drop the entry (a withdrawn intent, or a job that can no longer deliver)."""
        await self._offload(self.dest.delete, journal_key(row_key))

    async def _write(self, entry: Entry) -> None:
        data = json.dumps(asdict(entry)).encode()
        await self._offload(self.dest.put_bytes, journal_key(entry.row_key), data, "application/json")


def journal_key(row_key: str) -> str:
    """Where the journal entry of ``row_key`` lives under the destination."""
    return f"{JOURNAL_PREFIX}{row_key}.json"
