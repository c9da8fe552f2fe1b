"""What the API's error answers mean: each status translated into the exception tree.

The server's own message (and its ``requestId``) is kept, clipped to one readable line;
``Retry-After`` is read in both of its forms (seconds, or an HTTP date).
"""

from __future__ import annotations

import email.utils
import time

import httpx

from i2v.errors import ApiError, AuthError, OutOfCredits, RateLimited, RequestRejected, ServerError

_MAX_MESSAGE = 600


def error_from_response(response: httpx.Response) -> ApiError:
    """Translate an error answer into the exception tree, keeping the server's message."""
    status = response.status_code
    message, request_id = error_details(response)
    where = f"{response.request.method} {response.request.url.path}"
    text = f"{where}: HTTP {status}: {message}"
    if status == 401:
        return AuthError(text, status=status, request_id=request_id)
    if status == 403:
        return OutOfCredits(text, status=status, request_id=request_id)
    if status == 429:
        return RateLimited(
            text,
            status=status,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return ServerError(text, status=status, request_id=request_id)
    return RequestRejected(text, status=status, request_id=request_id)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_details(response: httpx.Response) -> tuple[str, str | None]:
    """The server's message, in one clipped line, and its request id when the body has one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body
        if isinstance(message, list):
            message = "; ".join(str(part) for part in message)
        request_id = body.get("requestId")
        return clip(str(message)), str(request_id) if request_id else None
    text = response.text.strip() or response.reason_phrase
    return clip(text), None


def clip(text: str) -> str:
    """``text`` on one line, at most a readable length."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
