"""Durable state in the destination itself, so any machine can resume a run.

Two small JSON objects per row key:

* ``journal/<key>.json`` — the generation started for that work, written right after
  the create answers and before polling. A rerun re-attaches to it instead of paying
  for a second job.
* ``records/<key>.json`` — the manifest row of a stored video, written only after the
  video object is complete. A rerun that finds a record *and* the video at its recorded
  size skips the row.

Keeping both in the destination (not in Prefect's database, whose ephemeral mode drops
records at exit) means the state travels with the outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from i2v.errors import StorageError
from i2v.models import RouteName
from i2v.outcomes import RowOutcome
from i2v.storage import Destination

log = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal/"
RECORDS_PREFIX = "records/"


@dataclass(frozen=True)
class Submission:
    """A generation started for a row key."""

    row_key: str
    model: str
    route: RouteName
    generation_id: str
    submitted_at: float
    attempts: int
    reattached: bool = False


class Journal:
    """Generation ids and finished records, kept under a destination."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest

    def save(self, submission: Submission) -> None:
        data = asdict(submission)
        data.pop("reattached")
        self.dest.put_bytes(_journal_key(submission.row_key), json.dumps(data).encode(), "application/json")

    def load(self, row_key: str) -> Submission | None:
        raw = self.dest.get_bytes(_journal_key(row_key))
        if raw is None:
            return None
        try:
            return Submission(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable journal entry for %s: %s", row_key, exc)
            return None

    def forget(self, row_key: str) -> None:
        """Drop a generation that can no longer deliver (expired or gone)."""
        self.dest.delete(_journal_key(row_key))

    def save_record(self, outcome: RowOutcome) -> None:
        assert outcome.row_key is not None
        self.dest.put_bytes(_record_key(outcome.row_key), outcome.to_json().encode(), "application/json")

    def done(self, row_keys: Iterable[str], *, video_prefix: str, workers: int = 16) -> dict[str, RowOutcome]:
        """Records whose video is still stored at its recorded size, by row key."""
        wanted = set(row_keys)
        present = {key[len(RECORDS_PREFIX) : -len(".json")] for key in self.dest.list_sizes(RECORDS_PREFIX)}
        candidates = sorted(wanted & present)
        if not candidates:
            return {}
        sizes = {self.dest.uri_for(key): size for key, size in self.dest.list_sizes(video_prefix).items()}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            records = list(pool.map(self._load_record, candidates))
        return {
            record.row_key: record
            for record in records
            if record is not None
            and record.row_key
            and record.video_uri
            and sizes.get(record.video_uri) == record.video_bytes
        }

    def _load_record(self, row_key: str) -> RowOutcome | None:
        try:
            raw = self.dest.get_bytes(_record_key(row_key))
            return RowOutcome.from_json(raw) if raw is not None else None
        except (StorageError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable record for %s: %s", row_key, exc)
            return None


def _journal_key(row_key: str) -> str:
    return f"{JOURNAL_PREFIX}{row_key}.json"


def _record_key(row_key: str) -> str:
    return f"{RECORDS_PREFIX}{row_key}.json"
