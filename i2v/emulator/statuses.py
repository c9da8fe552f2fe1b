"""The words a job's status is reported in, beyond the four the OpenAPI files list.

The vendor's contract names ``queued``, ``generating``, ``completed`` and ``error``,
but its own sample client also treats ``waiting`` and ``active`` as still running, and
its Python SDK adds ``processing``; jobs elsewhere end ``failed``, ``cancelled`` or
``expired``. A client that only knows the four words breaks on the others, so the
emulator can answer with them (``status_variants``, ``terminal_status_rate``).

Billing of the other failure statuses: the emulator charges every job in full when it
is accepted and refunds nothing, whatever its end, exactly as it treats ``error``; the
fetch answer's ``meta.usage`` reports that charge once the job has ended. That is the
harsher reading of the vendor's pricing (a client cannot count on refunds), and so the
one a test should meet.
"""

from __future__ import annotations

from i2v.emulator import chance
from i2v.emulator.jobs import JobFailure

#: Words a running job may be reported as, by its status; the first is the usual one.
RUNNING_WORDS: dict[str, tuple[str, ...]] = {
    "queued": ("queued", "waiting"),
    "generating": ("generating", "active", "processing"),
}

#: Failures that end a job in a status other than ``error``, by that status.
TERMINAL_FAILURES: dict[str, JobFailure] = {
    "failed": JobFailure("GenerationFailed", "The generation failed. Please try again.", "failed"),
    "cancelled": JobFailure("GenerationCancelled", "The generation was cancelled.", "cancelled"),
    "expired": JobFailure(
        "GenerationExpired",
        "The generation did not finish in time and has expired.",
        "expired",
    ),
}
TERMINAL_WORDS: tuple[str, ...] = tuple(TERMINAL_FAILURES)


def reported_status(status: str, seed: int, subject: str) -> str:
    """The word one answer uses for ``status``: a running status in one of its variants.

    ``subject`` names the answer (the job and which of its answers this is), so the
    word is fixed by the seed yet may change from one poll to the next.
    """
    words = RUNNING_WORDS.get(status)
    if words is None:
        return status
    return chance.pick(seed, "status.word", subject, words)
