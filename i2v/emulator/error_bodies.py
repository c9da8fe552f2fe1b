"""Error answers as the vendor and its file host send them.

API errors are JSON, ``{"statusCode", "message", "path", "requestId", "timestamp"}``
(the vendor's NestJS gateway shape), with the vendor's own wording where it is
published. Download errors come from the file host, which answers like an object store
behind presigned URLs: a small XML document.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response

UNAUTHORIZED = (
    "This request requires a valid API key. "
    "You can create a new API key on the Billing page: https://aimlapi.com/app/keys"
)
OUT_OF_CREDITS = (
    "You've run out of credits. Please top up your balance or update your payment method "
    "to continue: https://aimlapi.com/app/billing/"
)
BODY_INVALID = "Body validation error!"
QUERY_INVALID = "Query validation error!"
TOO_MANY_REQUESTS = "ThrottlerException: Too Many Requests"
TOO_MANY_JOBS = (
    "Too many concurrent generations: the limit of {limit} queued or running jobs for this "
    "key is reached. Wait for some to finish, then try again."
)

_MESSAGES = {
    401: UNAUTHORIZED,
    403: OUT_OF_CREDITS,
    429: TOO_MANY_REQUESTS,
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_STORAGE_CODES = {
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Please reduce your request rate."),
}


def default_message(status: int) -> str:
    """The message the API sends with ``status`` when nothing more specific applies."""
    if status in _MESSAGES:
        return _MESSAGES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up so that honouring it is always enough."""
    return str(max(0, math.ceil(seconds)))


def api_error(
    status: int,
    message: str | None,
    path: str,
    *,
    retry_after: float | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """An API error answer in the vendor's shape."""
    body: dict[str, Any] = {
        "statusCode": status,
        "message": message if message is not None else default_message(status),
        "path": path,
        "requestId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if extra:
        body.update(extra)
    headers = {"Retry-After": retry_after_header(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def storage_error(
    status: int,
    *,
    message: str | None = None,
    retry_after: float | None = None,
) -> Response:
    """A download error answer, shaped like an object store's."""
    phrase = default_message(status)
    code, default = _STORAGE_CODES.get(status, (phrase.replace(" ", ""), phrase))
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message or default)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    headers = {"Retry-After": retry_after_header(retry_after)} if retry_after is not None else None
    return Response(text, status_code=status, media_type="application/xml", headers=headers)
