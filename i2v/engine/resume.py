"""What the destination already knows of a row, and what that means before anything is paid.

::

    record says done (or failed for good)? ── report it, pay nothing
        (its video still stored at its size and SHA-256; a record written in part is
        no answer: the video stored under the row's name, or the journal's job, says)
    claimed by another live run? ── wait for its outcome (or for the claim to come free)
    claim it ── then look again (another run may have finished it meanwhile)
    the journal names a job? ── still live: re-attach; a create whose answer was lost:
        find it in the provider's logs (re-attach, or send again if it made no job)

A row's claim (:mod:`i2v.engine.claims`) keeps every other run off it from here until its
outcome is recorded; the journal (:mod:`i2v.engine.journal`) and records
(:mod:`i2v.engine.records`) carry what earlier runs left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from i2v import outcomes
from i2v.api.client import VideoApi
from i2v.engine import jobs
from i2v.engine.admission import AdmissionLimiter
from i2v.engine.claims import Held, RowClaims
from i2v.engine.download import inspect_stored
from i2v.engine.journal import Entry, Journal, Submission
from i2v.engine.kept_inputs import KeptInputs
from i2v.engine.offload import Patient
from i2v.engine.output_names import OutputNames
from i2v.engine.records import Records, Torn
from i2v.engine.spec import EngineOptions
from i2v.engine.unknown_creates import Found, NoJob, UnknownCreates
from i2v.errors import InvalidVideo, StorageError, SubmitUnknown
from i2v.inputs.row import Presigner, Row
from i2v.outcomes import Origin, RowOutcome

log = logging.getLogger(__name__)


@dataclass
class RowResult:
    """A row's outcome, and how the engine counts it."""

    outcome: RowOutcome
    #: Failed on something transient after which a retry can pick the row up again.
    unfinished: bool = False
    #: Served from this run's own record of an earlier attempt (already counted).
    reused: bool = False


@dataclass(frozen=True)
class Ready:
    """A row this run holds the claim of, with what the journal says and (for new work) its request body."""

    entry: Entry | None
    body: dict[str, Any] | None


class Resume:
    """The destination's knowledge of rows, for one run in one process."""

    def __init__(
        self,
        *,
        options: EngineOptions,
        api: VideoApi,
        journal: Journal,
        records: Records,
        claims: RowClaims,
        inputs: KeptInputs,
        limiter: AdmissionLimiter,
        patient: Patient,
        unknown: UnknownCreates,
        presign: Presigner | None,
    ) -> None:
        self.options = options
        self.api = api
        self.journal = journal
        self.records = records
        self.claims = claims
        self._inputs = inputs
        self._limiter = limiter
        self._patient = patient
        self._unknown = unknown
        self._presign = presign
        self._names = OutputNames(records.dest)

    async def prior(self, row: Row, origin: Origin) -> RowResult | Ready | Held:
        """The row's earlier outcome; or, with the row claimed by this run, what there is to do; or who holds it.

        A look that cannot be made (the destination failing past :class:`Patient`'s
        tries) raises :class:`StorageError`: the row fails, retryably, and nothing is paid
        for work that may be done.
        """
        record, entry, body = await self._patient(self._look_up, row)
        if isinstance(record, RowOutcome):
            earlier = await self.from_record(row, record, origin)
            if earlier is not None:
                return earlier
        claim = await self._patient(self.claims.claim, row.key)
        if isinstance(claim, Held):
            return claim
        # Claimed: look again. Another run may have recorded the row, or journaled a job and
        # stopped, between the first look and the claim (it gives its claim back after).
        record, entry = await self._patient(self._look_again, row)
        earlier = None
        if isinstance(record, RowOutcome):
            earlier = await self.from_record(row, record, origin)
        elif isinstance(record, Torn):
            # Something was recorded, but what is unknown: the video an earlier run stored
            # says, or else the journal's job (re-attached, never paid for again).
            earlier = await self._adopt(row, entry, origin)
        if earlier is not None:
            await self.release(row)
            return earlier
        if entry is not None and body is not None:
            body = None
        return Ready(entry, body)

    async def from_record(self, row: Row, record: RowOutcome, origin: Origin) -> RowResult | None:
        """What an existing record means for this row, or None to do the work."""
        if record.run is not None and record.run == origin.run:
            if record.row_index == row.index:
                return RowResult(record, reused=True)
            return RowResult(outcomes.duplicate(row, record, origin))
        if record.status == "completed":
            key = await self.records.stored_video(record)
            if key is None:
                return None
            # Named as this destination names them now, whatever the record said.
            thumbnail = self.records.dest.key_of(record.thumbnail_uri) if record.thumbnail_uri else None
            where = replace(record, video_uri=key, thumbnail_uri=thumbnail)
            return RowResult(outcomes.already_done(row, where, origin))
        if record.status != "failed" or record.retryable or self.options.retry == "all":
            return None
        if record.error_kind == SubmitUnknown.kind and self.options.resubmit_unknown:
            return None
        return RowResult(outcomes.not_retried(row, record, origin))

    async def reattach(self, row: Row, entry: Entry | None) -> Submission | None:
        """The live job a journal entry names for this row, counted as in flight; None to send a create."""
        if entry is None or entry.state in ("withdrawn", "ended"):
            return None
        if entry.state == "sending":
            entry = await self._settle_unknown(row, entry)
            if entry is None:
                return None
        submission = entry.submission()
        if submission is not None and await jobs.still_live(self.api, submission):
            log.info("row %s: re-attached to generation %s", row.index, submission.generation_id)
            self._limiter.adopt()
            return replace(submission, attempts=0, reattached=True)
        await self.forget(row, "its generation can no longer deliver a video")
        return None

    async def record(self, outcome: RowOutcome) -> None:
        if outcome.row_key is None:
            return
        try:
            await self.records.save(outcome)
        except StorageError as exc:
            # The manifest still gets the row; only a rerun's shortcut is lost.
            log.warning("row %s: outcome not recorded (%s)", outcome.row_index, exc)

    async def release(self, row: Row) -> None:
        """Give the row's claim back: its outcome is recorded, or this run leaves it."""
        await self._patient(self.claims.release, row.key)

    async def forget(self, row: Row, why: str) -> None:
        """The journaled job will deliver nothing: the next create for the row starts afresh."""
        try:
            await self.journal.ended(row.key, why)
        except StorageError as exc:
            log.warning("row %s: journal entry not closed (%s)", row.index, exc)

    # --- internals ------------------------------------------------------------------

    async def _adopt(self, row: Row, entry: Entry | None, origin: Origin) -> RowResult | None:
        """A row whose record is torn: the video an earlier run stored under its name, if it decodes; recorded again."""
        name = await self._patient(self._names.owned, row)
        if name is None:
            return None
        try:
            stored = await self._patient(inspect_stored, self.records.dest, name)
        except InvalidVideo as exc:
            log.warning("row %s: its record is torn and its stored video does not decode (%s)", row.index, exc)
            return None
        if stored is None:
            return None
        found = entry.submission() if entry is not None else None
        record = RowOutcome(
            **outcomes.base(row, Origin(entry.run if entry is not None else None)),
            status="completed",
            generation_id=found.generation_id if found is not None else None,
            submitted_at=found.submitted_at if found is not None else None,
            **stored.outcome_fields(),
            client_request_id=found.client_request_id if found is not None else None,
        )
        log.info("row %s: its record was torn; the video stored at %s is its own and decodes", row.index, name)
        await self.record(record)
        return RowResult(outcomes.already_done(row, record, origin))

    def _look_up(self, row: Row) -> tuple[RowOutcome | Torn | None, Entry | None, dict[str, Any] | None]:
        """What the destination knows of the row, and (for new work) its request body.

        One call in one thread: a row's first steps cost one hop off the event loop. A
        local or inline image is copied into the destination here, once per image, so the
        manifest can name it and a rerun needs nothing but the destination.
        """
        record = self.records.read(row.key)
        entry = self.journal.read(row.key)
        self._inputs.keep(row)
        body = row.request_body(self._presign) if record is None and entry is None else None
        return record, entry, body

    def _look_again(self, row: Row) -> tuple[RowOutcome | Torn | None, Entry | None]:
        return self.records.read(row.key), self.journal.read(row.key)

    async def _settle_unknown(self, row: Row, entry: Entry) -> Entry | None:
        """A create whose answer never came: the job it made, if the provider's logs show one; None to send again."""
        if self.options.resubmit_unknown:
            log.warning("row %s: sending again a create whose outcome was unknown (run %s)", row.index, entry.run)
            await self.journal.withdraw(row.key, entry)
            return None
        found = await self._unknown.resolve(entry)
        if isinstance(found, Found):
            log.info("row %s: the lost create's job %s found in the provider's logs", row.index, found.generation_id)
            return await self.journal.found(entry, found.generation_id)
        if isinstance(found, NoJob):
            log.info("row %s: the lost create made no job (%s); sending it again", row.index, found.reason)
            await self.journal.withdraw(row.key, entry, why=found.reason)
            return None
        raise SubmitUnknown(
            f"a create for this work was sent (run {entry.run}) and may have started a job; {found.reason};"
            " not sent again, to avoid paying twice"
        )
