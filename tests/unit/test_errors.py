import pytest

from worker.errors import (
    AnyRTCError,
    AppInvalid,
    BadRequest,
    BadSignature,
    BadTimestamp,
    RateLimited,
    RecordCallFailed,
    UnknownApp,
    UnknownVendorCode,
    VendorHTTPError,
    VendorInternalError,
    VendorTimeout,
    VendorUnreachable,
    error_for_code,
)


@pytest.mark.parametrize(
    ("code", "cls", "retryable"),
    [
        (400, BadRequest, False),
        (247, UnknownApp, False),
        (281, BadSignature, False),
        (282, BadTimestamp, False),
        (284, AppInvalid, False),
        (299, RateLimited, True),
        (501, VendorInternalError, True),
        (777, UnknownVendorCode, False),
    ],
)
def test_each_vendor_code_maps_to_its_class(code: int, cls: type, retryable: bool) -> None:
    error = error_for_code(code, "vendor says so", endpoint="getVodListByTime")
    assert type(error) is cls
    assert isinstance(error, AnyRTCError)
    assert error.code == code
    assert error.message == "vendor says so"
    assert error.retryable is retryable
    assert "getVodListByTime" in str(error) and str(code) in str(error)


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (VendorHTTPError, True),
        (VendorTimeout, True),
        (VendorUnreachable, True),
        (RecordCallFailed, False),
    ],
)
def test_transport_and_result_errors(cls: type[AnyRTCError], retryable: bool) -> None:
    assert cls("x", "y").retryable is retryable
