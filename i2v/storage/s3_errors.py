"""What an S3 service's errors mean for a destination: retry, or say what to fix.

``AccessDenied``, a missing bucket and bad credentials are permanent (a retry would fail
the same way); anything else (throttling, 5xx, a connection dropped) is transient.
"""

from __future__ import annotations

from i2v.errors import StorageError

PERMANENT_S3_CODES = frozenset(
    {
        "AccessDenied",
        "NoSuchBucket",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "AllAccessDisabled",
    }
)


def s3_code(exc: BaseException) -> str | None:
    """The service's error code (``NoSuchKey``, ``404``, ...) of a botocore error, if it has one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or None
    return None


def unusable(bucket: str, exc: BaseException) -> str:
    """Why a destination bucket cannot be used, in one line that says what to do."""
    name = type(exc).__name__
    if name.startswith(("NoCredentials", "PartialCredentials")):
        return (
            f"no credentials for bucket {bucket!r}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            " (or AWS_PROFILE, or run where a role gives them)"
        )
    code = s3_code(exc)
    if code in ("404", "NoSuchBucket", "NotFound"):
        return f"no bucket named {bucket!r} at this endpoint (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION)"
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access to bucket {bucket!r} refused ({code}): check the credentials and the bucket's policy"
    return f"destination bucket {bucket!r} is not usable: {describe(exc)}"


def describe(exc: BaseException) -> str:
    """An error in one line, led by the service's code when there is one."""
    code = s3_code(exc)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"


def storage_error(what: str, exc: BaseException) -> StorageError:
    """``exc`` as the :class:`StorageError` of ``what``, transient unless retrying cannot help."""
    code = s3_code(exc)
    transient = code not in PERMANENT_S3_CODES and not type(exc).__name__.startswith("NoCredentials")
    return StorageError(f"{what}: {describe(exc)}", transient=transient)
