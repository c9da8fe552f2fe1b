"""Request tracing: the ids and cost headers every inference answer carries.

The vendor's rules (``capabilities/request-tracing-and-cost.md``), for the two create
and the two fetch routes, error answers included:

* ``X-Client-Request-Id`` is the client's own id for the call: 1-128 characters of
  ``A-Z a-z 0-9 . _ : -``. Anything else (or the header sent twice) is silently
  dropped: the request runs as normal and nothing says the id was ignored.
* ``x-inference-id`` is always there on a create: the generation id of an accepted job,
  a fresh id of the same shape otherwise. On a fetch it is the polled ``generation_id``
  when that looks like an id this service could have issued, and is left out otherwise.
* ``x-client-request-id`` echoes a valid client id.
* ``x-aimlapi-credits-used`` (an integer) and ``x-aimlapi-usd-spent`` (the same in USD,
  nine decimals) are on every JSON answer. Video is charged once the generation reports
  ``completed``: a create says 0, a fetch says 0 until the job is completed and then its
  cost. A failed request costs nothing.
* All four names are listed in ``Access-Control-Expose-Headers``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from starlette.responses import Response

from i2v.emulator.jobs import Job

CLIENT_REQUEST_ID = "x-client-request-id"
INFERENCE_ID = "x-inference-id"
CREDITS_USED = "x-aimlapi-credits-used"
USD_SPENT = "x-aimlapi-usd-spent"
TRACING_HEADERS = (INFERENCE_ID, CLIENT_REQUEST_ID, CREDITS_USED, USD_SPENT)
#: The vendor's exchange rate: ``$1 = 2,000,000`` credits.
CREDITS_PER_USD = 2_000_000

_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The shape of the ids the emulator issues: version-4 UUIDs in lower case (see
# ``chance.derived_uuid``).
_ISSUED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass
class Trace:
    """What one inference request leaves behind for its headers and its log row."""

    #: When the request arrived: wall clock (the log row's ``created``) and monotonic.
    created: datetime
    arrived: float
    #: The client's id if valid, else ``None`` (dropped without a word).
    client_request_id: str | None
    #: The job a create made, if it got that far (its answer may still be lost).
    job: Job | None = None
    #: Credits the answer reports as spent (a fetch of a completed job).
    credits: int = 0
    #: The model the request named, once known.
    model: str | None = None


def valid_client_request_id(values: list[str]) -> str | None:
    """The client's ``X-Client-Request-Id`` (all values of the header), or ``None`` if unusable."""
    if len(values) != 1 or not _CLIENT_ID.fullmatch(values[0]):
        return None
    return values[0]


def looks_issued(value: str) -> bool:
    """Whether ``value`` has the shape of an id the emulator could have issued."""
    return _ISSUED_ID.fullmatch(value) is not None


def new_inference_id() -> str:
    """A fresh inference id, shaped like a generation id, for a request that made no job."""
    return str(uuid.uuid4())


def usd(credits: int) -> float:
    """``credits`` in US dollars."""
    return credits / CREDITS_PER_USD


def add_tracing(
    answer: Response,
    *,
    inference_id: str | None,
    client_request_id: str | None,
    credits: int,
) -> None:
    """Put the tracing headers on ``answer`` (before it is sent); cost only on JSON answers."""
    headers = answer.headers
    if inference_id is not None:
        headers[INFERENCE_ID] = inference_id
    if client_request_id is not None:
        headers[CLIENT_REQUEST_ID] = client_request_id
    if headers.get("content-type", "").startswith("application/json"):
        headers[CREDITS_USED] = str(credits)
        headers[USD_SPENT] = f"{usd(credits):.9f}"
    headers["Access-Control-Expose-Headers"] = ", ".join(TRACING_HEADERS)
