import string

from hypothesis import given
from hypothesis import strategies as st

from worker.anyrtc.signing import make_random, sign


def test_signature_matches_hand_computed_vector() -> None:
    # printf '%s' 'anyrtcYoK8tlxUPXVR1563798085000s3cr3t-T0ken123456' | md5sum
    assert (
        sign("anyrtcYoK8tlxUPXVR", 1563798085000, "s3cr3t-T0ken", "123456")
        == "838636fad4bf51a69261c7cd2189a4b4"
    )


def test_signature_second_vector_and_string_timestamp() -> None:
    # printf '%s' 'demo-app1700000000123demo-vod-tokenAbC123xyZ' | md5sum
    expected = "6baee0bf6f0d18e51f8fa614959d7435"
    assert sign("demo-app", 1700000000123, "demo-vod-token", "AbC123xyZ") == expected
    assert sign("demo-app", "1700000000123", "demo-vod-token", "AbC123xyZ") == expected


def test_signature_order_matters() -> None:
    assert sign("a", 1, "b", "c") != sign("a", 1, "c", "b")


@given(st.integers(min_value=6, max_value=10))
def test_random_has_requested_length_and_alphabet(length: int) -> None:
    value = make_random(length)
    assert len(value) == length
    assert set(value) <= set(string.ascii_letters + string.digits)


def test_random_default_length_in_range_and_varies() -> None:
    values = {make_random() for _ in range(200)}
    assert all(6 <= len(v) <= 10 for v in values)
    assert len(values) == 200


@given(st.text(min_size=1, max_size=20), st.integers(min_value=10**12, max_value=10**13))
def test_signature_is_lowercase_md5_hex(app: str, ts: int) -> None:
    digest = sign(app, ts, "tok", "abcdef")
    assert len(digest) == 32
    assert digest == digest.lower()
    int(digest, 16)
