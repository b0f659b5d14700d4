"""The envelope model: encoding round trips and validation on decode."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.message import (
    Envelope,
    EnvelopeError,
    Extension,
    Notify,
    Priority,
    Recipient,
    ReportRequest,
    Ret,
    TraceElement,
    decode_envelope,
    encode_envelope,
)

text = st.text(min_size=1, max_size=40)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)

recipients = st.builds(
    Recipient,
    address=text,
    originally_specified_number=st.integers(0, 32767),
    report_request=st.sampled_from(ReportRequest),
    mta_report_request=st.sampled_from(ReportRequest),
    responsibility=st.booleans(),
    notify=st.lists(st.sampled_from(Notify), max_size=3, unique=True),
    orcpt=st.none() | text,
    extensions=st.lists(
        st.builds(
            Extension,
            type=text,
            critical_for=st.lists(text, max_size=2),
            value=st.binary(max_size=20),
        ),
        max_size=2,
    ),
)

envelopes = st.builds(
    Envelope,
    mts_id=text,
    originator=st.text(max_size=40),
    recipients=st.lists(recipients, min_size=1, max_size=5),
    content_type=text,
    encoded_information_types=st.lists(text, max_size=3),
    priority=st.sampled_from(Priority),
    per_message_indicators=st.lists(text, max_size=3),
    deferred_delivery=st.none() | times,
    trace=st.lists(st.builds(TraceElement, domain=text, arrival=times), max_size=3),
    arrival=times,
    ret=st.none() | st.sampled_from(Ret),
    envid=st.none() | text,
    smtputf8=st.booleans(),
    is_report=st.booleans(),
)


@given(envelopes)
def test_envelope_round_trip(envelope: Envelope) -> None:
    assert decode_envelope(encode_envelope(envelope)) == envelope


@given(st.binary(max_size=200))
def test_garbage_never_escapes_as_anything_but_envelope_error(data: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_envelope(data)


def test_wrong_shapes_are_refused_with_a_reason() -> None:
    wrong_type = msgspec.msgpack.encode({"mts_id": 5, "originator": "a", "recipients": []})
    with pytest.raises(EnvelopeError, match="mts_id"):
        decode_envelope(wrong_type)
    no_recipients = msgspec.msgpack.encode({"mts_id": "x", "originator": "a", "recipients": []})
    with pytest.raises(EnvelopeError, match="no recipients"):
        decode_envelope(no_recipients)
    bad_priority = msgspec.msgpack.encode(
        {"mts_id": "x", "originator": "a", "recipients": [{"address": "b"}], "priority": 9}
    )
    with pytest.raises(EnvelopeError, match="priority"):
        decode_envelope(bad_priority)
