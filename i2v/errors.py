"""Every failure the pipeline knows how to name.

::

    I2VError
     ├── ConfigError                 settings or destination unusable (run-fatal)
     ├── InputError                  a CSV row or field is invalid (row, field)
     │    └── InputChanged           the input file changed after its run planned it
     ├── ApiError                    the API answered with an error, or could not be reached
     │    ├── AuthError              401: the key is missing or wrong (run-fatal)
     │    ├── OutOfCredits           403: the account cannot pay (run-fatal)
     │    ├── RequestRejected        400/404/422: this request will never succeed as sent
     │    ├── RateLimited            429: slow down; carries ``retry_after`` seconds
     │    ├── ServerError            5xx
     │    ├── TransportError         no HTTP answer (connect, read, protocol); ``sent`` says
     │    │                          whether the request may have reached the server
     │    ├── BadResponse            2xx whose body breaks the contract
     │    └── SubmitUnknown          a create may have started a job, but no id came back
     ├── Stopped                     the run stopped admitting work before this row was sent
     ├── JobError                    the generation itself did not produce a video
     │    ├── GenerationFailed       the job ended in status ``error``
     │    └── GenerationTimeout      the job was still unfinished at its deadline
     └── TransferError               the video could not be stored
          ├── DownloadError          the download URL answered badly or expired
          │    └── DownloadRefused   the URL or its size breaks the download rules
          ├── InvalidVideo           the bytes are not a decodable video
          └── StorageError           the destination failed a read or refused a write

Two properties drive what happens next:

* ``kind`` is the manifest's ``error_kind``: a short stable name per failure.
* ``retryable`` says whether running the row again could succeed. It is about the row,
  not the request; whether a single request may be retried in-run is decided by the
  predicates in :mod:`i2v.engine.retry`.

Messages never contain the API key: they are built from response bodies and URLs,
and the key only ever travels in a request header.
"""

from __future__ import annotations


class I2VError(Exception):
    """Base of every error raised by the pipeline."""

    kind = "error"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions cross process boundaries (Prefect state data); keep every attribute.
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[I2VError], message: str, state: dict[str, object]) -> I2VError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class ConfigError(I2VError):
    """Settings, credentials or destination that make the whole run impossible."""

    kind = "config"


class InputError(I2VError):
    """A CSV row, or one of its fields, is invalid."""

    kind = "invalid_input"

    def __init__(
        self, message: str, *, row: int | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        where = []
        if row is not None:
            where.append(f"row {row}" + (f" (CSV line {line})" if line is not None else ""))
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.row = row
        self.line = line
        self.field = field
        self.reason = message


class InputChanged(InputError):
    """The input file changed after its run planned it: the plan's shards no longer fit it.

    Each row of a shard read afterwards fails with it, retryably: a new run plans the file
    as it is now.
    """

    kind = "input_changed"
    retryable = True


class ApiError(I2VError):
    """The API answered with an error status, or could not be reached."""

    kind = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class AuthError(ApiError):
    """401: the key is missing or not accepted."""

    kind = "auth"


class OutOfCredits(ApiError):
    """403: the account has no credits (or its plan forbids the call)."""

    kind = "out_of_credits"
    retryable = True


class RequestRejected(ApiError):
    """400/404/422: the request is wrong as sent; sending it again changes nothing."""

    kind = "rejected"


class RateLimited(ApiError):
    """429: too many requests or too many concurrent jobs."""

    kind = "rate_limited"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx from the API."""

    kind = "server_error"
    retryable = True


class TransportError(ApiError):
    """No HTTP answer at all: connection refused, timeout, broken connection.

    ``sent`` is False only when the request certainly never reached the server
    (the connection was never made), which is what makes a create safe to resend.
    """

    kind = "transport"
    retryable = True

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class BadResponse(ApiError):
    """A success status whose body does not follow the contract."""

    kind = "bad_response"
    retryable = True


class SubmitUnknown(ApiError):
    """A create was sent and may have started (and billed) a job, but no id came back.

    The row is never resubmitted on its own: a second create could pay twice. The
    journal keeps the intent, so reruns see the row as unknown too, until a user asks
    for unknown rows to be sent again.
    """

    kind = "submit_unknown"


class Stopped(I2VError):
    """The run stopped sending new work (a run-fatal error, a signal, a policy)."""

    kind = "stopped"

    def __init__(self, message: str, *, cause: I2VError | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        if cause is not None:
            # Rows not sent after a bad key or an empty account fail for that reason.
            self.kind = cause.kind
            self.retryable = True


class JobError(I2VError):
    """The generation job did not produce a video."""

    kind = "job_error"

    def __init__(self, message: str, *, generation_id: str, polls: int = 0) -> None:
        super().__init__(message)
        self.generation_id = generation_id
        self.polls = polls


class GenerationFailed(JobError):
    """The job ended in status ``error``."""

    kind = "generation_failed"

    def __init__(
        self,
        message: str,
        *,
        generation_id: str,
        polls: int = 0,
        error_name: str | None = None,
    ) -> None:
        super().__init__(message, generation_id=generation_id, polls=polls)
        self.error_name = error_name
        # Moderation and validation verdicts repeat; anything else (capacity, internal
        # faults) may well pass on another try.
        self.retryable = not _is_permanent_job_error(error_name, message)


class GenerationTimeout(JobError):
    """The job had not finished (or kept answering an unknown status) at its deadline."""

    kind = "timeout"
    retryable = True


class TransferError(I2VError):
    """The finished video could not be copied into the destination."""

    kind = "transfer_error"
    retryable = True


class DownloadError(TransferError):
    """The video URL answered with an error, or the stream broke."""

    kind = "download"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DownloadRefused(DownloadError):
    """The video URL is not one the pipeline follows (scheme, host, redirects) or the video is too large."""

    kind = "download_refused"
    retryable = False


class InvalidVideo(TransferError):
    """The downloaded bytes are not a decodable video."""

    kind = "invalid_video"


class StorageError(TransferError):
    """The destination refused or failed a read or write.

    ``transient`` if trying again at once may work (a dropped connection, a 5xx): the
    step is tried again within the run. ``unwritable`` if the destination takes no more
    writes until someone acts (a full disk, a read-only mount, a refused permission):
    trying again at once is pointless, and the run stops sending work it could not store.
    Either way the row is ``retryable`` unless told otherwise: a destination that fails
    says nothing about the row, and once it is fixed a rerun stores the row's video (its
    job is journaled, so it is collected, not paid for again).
    """

    kind = "storage"

    def __init__(
        self, message: str, *, transient: bool = False, unwritable: bool = False, retryable: bool = True
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.unwritable = unwritable
        self.retryable = retryable


_PERMANENT_JOB_WORDS = ("moderation", "policy", "inappropriate", "invalid", "unsupported")


def _is_permanent_job_error(name: str | None, message: str) -> bool:
    text = f"{name or ''} {message}".lower()
    return any(word in text for word in _PERMANENT_JOB_WORDS)
