"""Every error the product raises, in one tree (one base class, a docstring on each)."""

from __future__ import annotations

__all__ = [
    "AnyRTCError",
    "AppInvalid",
    "BadRequest",
    "BadSignature",
    "BadTimestamp",
    "BudgetExhausted",
    "InvalidBooking",
    "PermanentAnyRTCError",
    "ProtocolError",
    "PublishFailed",
    "RateLimited",
    "RecordCallFailed",
    "RecorderError",
    "RetryableAnyRTCError",
    "UnknownApp",
    "UnknownVendorCode",
    "VendorHTTPError",
    "VendorInternalError",
    "VendorTimeout",
    "VendorUnreachable",
    "error_for_code",
]


class RecorderError(Exception):
    """Base of every error this product raises on purpose."""


class InvalidBooking(RecorderError):
    """A booking event is malformed; it is dead-lettered, never retried."""


class BookingFailed(RecorderError):
    """A booking action ended one or more bookings ``failed`` (the vendor's code and message in
    the text): raised by the task so that Celery, Flower and task-failed events see a FAILURE."""


class PublishFailed(RecorderError):
    """A downstream message could not be published within the retry policy."""


class BudgetExhausted(RecorderError):
    """No query slot is free now; ``retry_after`` seconds until one frees."""

    def __init__(self, retry_after: float, app_id: str = "") -> None:
        super().__init__(
            f"query budget exhausted for app {app_id!r}; next slot in {retry_after:.3f}s"
        )
        self.retry_after = retry_after
        self.app_id = app_id


class AnyRTCError(RecorderError):
    """A vendor call failed; ``code``, ``message`` and ``retryable`` say how."""

    retryable: bool = False

    def __init__(self, code: int | str, message: str, *, endpoint: str = "") -> None:
        self.code = code
        self.message = message
        self.endpoint = endpoint
        where = f" {endpoint}" if endpoint else ""
        super().__init__(f"anyRTC{where} error {code}: {message}")


class RetryableAnyRTCError(AnyRTCError):
    """A vendor failure that may succeed if tried again later."""

    retryable = True


class PermanentAnyRTCError(AnyRTCError):
    """A vendor failure that repeating the same call will not fix."""

    retryable = False


class RateLimited(RetryableAnyRTCError):
    """Vendor code 299: the query budget (5 per minute) is spent."""


class VendorInternalError(RetryableAnyRTCError):
    """Vendor code 501: internal error on the vendor side."""


class VendorHTTPError(RetryableAnyRTCError):
    """The vendor answered with an HTTP 5xx status."""


class VendorTimeout(RetryableAnyRTCError):
    """No answer within the configured timeout; the call may or may not have happened."""


class VendorUnreachable(RetryableAnyRTCError):
    """The connection could not be made or was dropped before an answer."""


class ProtocolError(RetryableAnyRTCError):
    """The answer was not the JSON the vendor documents (often a proxy page)."""


class BadRequest(PermanentAnyRTCError):
    """Vendor code 400 (or HTTP 4xx): a parameter is missing or mistyped."""


class UnknownApp(PermanentAnyRTCError):
    """Vendor code 247: the app id does not exist."""


class BadSignature(PermanentAnyRTCError):
    """Vendor code 281: the signature is wrong (most often a wrong vod token)."""


class BadTimestamp(PermanentAnyRTCError):
    """Vendor code 282 twice in a row: our timestamp is rejected even when fresh."""


class AppInvalid(PermanentAnyRTCError):
    """Vendor code 284: the app is invalid or deleted."""


class UnknownVendorCode(PermanentAnyRTCError):
    """A vendor code the guide does not list."""


class RecordCallFailed(PermanentAnyRTCError):
    """startrecord/stoprecord answered a ``result`` other than ``ok``; ``code`` is that result."""


_CODE_CLASSES: dict[int, type[AnyRTCError]] = {
    400: BadRequest,
    247: UnknownApp,
    281: BadSignature,
    282: BadTimestamp,
    284: AppInvalid,
    299: RateLimited,
    501: VendorInternalError,
}


def error_for_code(code: int, message: str, *, endpoint: str = "") -> AnyRTCError:
    """The error instance for a vendor ``code`` other than 200."""
    cls = _CODE_CLASSES.get(code, UnknownVendorCode)
    return cls(code, message, endpoint=endpoint)
