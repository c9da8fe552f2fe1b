"""The journal: which generation each piece of work started, durable before it costs money.

One small JSON object per row key, ``journal/<key>.json``, in the destination itself (so
the state travels with the outputs and any machine can resume). Only the run holding the
row's claim (:mod:`i2v.engine.claims`) writes it. Its states:

* ``sending`` — written just before a create is sent, with the create's client request
  id (``X-Client-Request-Id``, :func:`client_request_id`). If the process dies, or the
  answer is lost, from here on, only the provider knows whether it started (and bills) a
  job: the row is *submit unknown* until the provider's usage logs say
  (:mod:`i2v.engine.unknown_creates`).
* ``submitted`` — written as soon as the create answers with a generation id, before
  polling. A rerun re-attaches to that job instead of paying for a second one.
* ``withdrawn`` — the create certainly started no job (429, connection refused, a
  request the provider refused, or one its logs show failed).
* ``ended`` — the job will deliver nothing more (the provider no longer knows it).

An entry is never deleted: it keeps how many creates were ever sent for its row key
(``sends``), so every create's client request id is new. Each object carries a SHA-256 of
its content: a torn write is read as "a create may have been sent" (look the job up
again), never as "no job".

Keeping this in the destination rather than in Prefect's database (whose ephemeral mode
drops records at exit) is what makes a crash cost a re-attach, not a payment.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from i2v.api.models import RouteName
from i2v.engine.offload import Runs
from i2v.storage.destination import Destination

log = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal/"

EntryState = Literal["sending", "submitted", "withdrawn", "ended"]


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
    client_request_id: str | None = None
    sends: int = 0


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
    #: Creates ever sent for this row key (the last one's client request id ends in this number).
    sends: int = 0
    client_request_id: str | None = None
    #: Why the entry is in its state, for ``withdrawn`` and ``ended``.
    note: str | None = None
    #: The object could not be read whole: a create may have been sent, its id is unknown.
    torn: bool = False

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
            client_request_id=self.client_request_id,
            sends=self.sends,
        )


def client_request_id(row_key: str, send: int) -> str:
    """The ``X-Client-Request-Id`` of the ``send``-th create for ``row_key``.

    Within the vendor's alphabet (``A-Z a-z 0-9 . _ : -``, 1 to 128 characters; anything
    else is silently dropped): row keys are hexadecimal, so this always is.
    """
    return f"i2v-{row_key}-{send}"


class Journal:
    """Journal entries kept under a destination; storage calls run through ``offload``."""

    def __init__(self, dest: Destination, offload: Runs) -> None:
        self.dest = dest
        self._offload = offload

    async def sending(
        self, row_key: str, *, model: str, route: RouteName, at: float, run: str | None, sends: int
    ) -> str:
        """Record the intent to send the ``sends``-th create for ``row_key`` (before sending it); its client id."""
        client_id = client_request_id(row_key, sends)
        await self._write(Entry("sending", row_key, model, route, at, run, sends=sends, client_request_id=client_id))
        return client_id

    async def withdraw(self, row_key: str, entry: Entry | None = None, *, why: str | None = None) -> None:
        """The create certainly started no job: the row may be sent again."""
        entry = entry or await self.load(row_key)
        if entry is None:
            return
        await self._write(replace(entry, state="withdrawn", generation_id=None, note=why, torn=False))

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
            sends=submission.sends,
            client_request_id=submission.client_request_id,
        )
        await self._write(entry)

    async def found(self, entry: Entry, generation_id: str) -> Entry:
        """The job a ``sending`` entry's create made, learnt afterwards (from the provider's logs)."""
        settled = replace(entry, state="submitted", generation_id=generation_id, torn=False)
        await self._write(settled)
        return settled

    async def ended(self, row_key: str, why: str) -> None:
        """The journaled job will deliver nothing more; the next create starts afresh."""
        entry = await self.load(row_key)
        if entry is not None:
            await self._write(replace(entry, state="ended", note=why, torn=False))

    async def load(self, row_key: str) -> Entry | None:
        return await self._offload(self.read, row_key)

    def read(self, row_key: str) -> Entry | None:
        """The entry for ``row_key``, read in the calling thread; a torn one as an unknown ``sending``."""
        raw = self.dest.get_bytes(journal_key(row_key))
        if raw is None:
            return None
        try:
            return _parse(raw)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("journal entry for %s is torn (%s): the job is looked up again", row_key, exc)
            return Entry("sending", row_key, "", "universal", 0.0, torn=True)

    async def _write(self, entry: Entry) -> None:
        data = asdict(entry)
        data.pop("torn")
        body = json.dumps(data, sort_keys=True)
        sealed = json.dumps({"entry": data, "sha256": hashlib.sha256(body.encode()).hexdigest()}).encode()
        await self._offload(self.dest.put_bytes, journal_key(entry.row_key), sealed, "application/json")


def _parse(raw: bytes) -> Entry:
    data: dict[str, Any] = json.loads(raw)
    if "entry" in data:
        body = json.dumps(data["entry"], sort_keys=True)
        if hashlib.sha256(body.encode()).hexdigest() != data.get("sha256"):
            raise ValueError("its checksum does not match its content")
        data = dict(data["entry"])
    elif "state" not in data:
        # Entries written before intents were journaled name a started job.
        data["state"] = "submitted"
        data["at"] = data.pop("submitted_at")
    return Entry(**data)


def journal_key(row_key: str) -> str:
    """Where the journal entry of ``row_key`` lives under the destination."""
    return f"{JOURNAL_PREFIX}{row_key}.json"
