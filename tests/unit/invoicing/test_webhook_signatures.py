"""The provider's webhook signature (I5) against hostile headers (issue 12): whatever arrives in
`Adledger-Signature`, `verify` either answers the signed timestamp or raises a `SignatureError`
(a typed 400/401 at the edge), never anything else (a 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from adledger_invoicing.domain import signatures
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 11, 21, 9, tzinfo=UTC)
STAMP = int(NOW.timestamp())
BODY = b'{"id":"evt_1","type":"payment.succeeded"}'

#: The parts a header is made of, and values that broke or could break a parser: non-ASCII digits
#: (`²` passes str.isdigit but not int()), more digits than int() converts, signs, spaces, NULs.
_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["²", "٣", "1²", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1_000", "\x00", "9" * 5000, str(STAMP)]
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
_PARTS = st.tuples(
    st.sampled_from(["t", "v1", "v0", "", " t", "T", "t\x00"]), st.sampled_from(["=", "", "=="]), _VALUES
).map(lambda part: "".join(part))
_HEADERS = st.one_of(st.text(max_size=200), st.lists(_PARTS, max_size=6).map(",".join))


@settings(max_examples=500, deadline=None)
@given(header=_HEADERS)
def test_i5_any_signature_header_is_accepted_or_a_typed_signature_error_never_a_crash(header: str) -> None:
    try:
        stamp = signatures.verify("secret", header, BODY, NOW)
    except signatures.SignatureError:
        return
    # Accepted only when it really signs the body now.
    assert abs(stamp - STAMP) <= signatures.DEFAULT_TOLERANCE_S
    assert signatures.sign("secret", stamp, BODY).split("v1=")[1] in header


@pytest.mark.parametrize(
    "header",
    [
        "t=²,v1=00",
        "t=٣,v1=00",
        f"t={'9' * 5000},v1=00",
        "t=-1,v1=00",
        "t=,v1=",
        "t=1",
        "v1=00",
        ",",
        "=",
        "t=1,v1=" + "0" * 5000,
    ],
)
def test_i5_the_malformed_headers_found_so_far_are_signature_errors(header: str) -> None:
    with pytest.raises(signatures.SignatureError):
        signatures.verify("secret", header, BODY, NOW)


def test_i5_a_malformed_header_is_told_apart_from_a_wrong_signature() -> None:
    with pytest.raises(signatures.MalformedSignatureError):
        signatures.verify("secret", "t=²,v1=00", BODY, NOW)
    with pytest.raises(signatures.BadSignatureError) as raised:
        signatures.verify("secret", signatures.sign("another secret", STAMP, BODY), BODY, NOW)
    assert not isinstance(raised.value, signatures.MalformedSignatureError)


def test_i5_a_provider_rolling_its_secret_signs_with_both_and_either_is_accepted() -> None:
    old, new = signatures.sign("old secret", STAMP, BODY), signatures.sign("new secret", STAMP, BODY)
    both = f"t={STAMP},v1={old.split('v1=')[1]},v1={new.split('v1=')[1]}"
    assert signatures.verify("new secret", both, BODY, NOW) == STAMP
    assert signatures.verify("old secret", both, BODY, NOW) == STAMP
    with pytest.raises(signatures.BadSignatureError):
        signatures.verify("new secret", old, BODY, NOW + timedelta(seconds=1))
