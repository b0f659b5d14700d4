"""P1 (X.411): MTA-bind, O/R names, the MessageTransferEnvelope and the MTS-APDU."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcap import tcp_streams
from test_oraddress import oraddresses

from waypost.address import ORAddress
from waypost.asn1 import (
    OCTET_STRING,
    SET,
    BadValueError,
    BERError,
    Element,
    UnexpectedTagError,
    application,
    context,
    decode,
    encode_tlv,
)
from waypost.message import (
    ContentType,
    Envelope,
    Extension,
    Priority,
    Recipient,
    ReportRequest,
    TraceElement,
)
from waypost.osi.session_spdu import decode_tsdu
from waypost.x400.p1_bind import (
    MTABind,
    MTABindError,
    decode_bind,
    decode_bind_error,
    encode_bind,
    encode_bind_error,
    unwrap,
    wrap,
)
from waypost.x400.p1_envelope import (
    P1Message,
    P1Raw,
    TransferEnvelope,
    decode_envelope,
    decode_mts_apdu,
    encode_envelope,
    encode_mts_apdu,
    unsupported_critical,
)
from waypost.x400.p1_names import (
    ORName,
    decode_mts_identifier,
    decode_orname,
    encode_mts_identifier,
    encode_orname,
)

PP = Path("/work/shared/vectors/pp")

# ----------------------------------------------------------------------------- bind

# PP's authenticated MTABindArgument (msgx410.pcap): name PPTEST-MTA, OCTET STRING password.
PP_BIND = b"\xa1\x16\x80\x0aPPTEST-MTA\xa1\x08\x04\x06pppass"


def test_bind_golden_bytes() -> None:
    bind = decode_bind(PP_BIND)
    assert bind == MTABind(name="PPTEST-MTA", password=b"pppass")
    assert bind.authenticated
    assert encode_bind(bind) == PP_BIND
    assert "pppass" not in repr(bind)
    ia5 = MTABind(name="A", password="secret")
    assert encode_bind(ia5) == b"\xa1\x0d\x80\x01A\xa1\x08\x16\x06secret"
    assert decode_bind(encode_bind(ia5)) == ia5


def test_unauthenticated_and_wrapped() -> None:
    assert encode_bind(MTABind()) == b"\x05\x00"
    assert decode_bind(b"\x05\x00") == MTABind()
    assert not MTABind().authenticated
    wrapped = wrap(16, PP_BIND)
    assert wrapped[:2] == b"\xb0\x18"
    assert decode_bind(unwrap(wrapped, 16)).name == "PPTEST-MTA"
    with pytest.raises(UnexpectedTagError):
        unwrap(wrapped, 17)


def test_bind_security_context_and_strong_credentials_kept() -> None:
    raw = MTABind(name="M", credentials=b"\xa0\x02\x05\x00", security_context=b"\xa2\x02\x31\x00")
    assert decode_bind(encode_bind(raw)) == raw


@pytest.mark.parametrize("error", list(MTABindError))
def test_bind_error(error: MTABindError) -> None:
    wire = encode_bind_error(error)
    assert wire == bytes((0x0A, 1, int(error)))
    assert decode_bind_error(wire) is error
    assert decode_bind_error(wrap(18, wire)[2:]) is error


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        (b"\x05\x01\x00", "mta-bind"),
        (b"\x02\x01\x00", "mta-bind"),
        (b"\xa1\x03\x80\x01A", "mta-bind"),  # no credentials
        (b"\xa1\x08\x80\x01A\xa1\x03\x02\x01\x00", "mta-bind.credentials.credentials-choice"),
        (b"\xa1\x0a\x80\x01A\xa1\x02\x04\x00\x85\x01\x00", "mta-bind"),
        (b"\xa1\x06\x80\x01\xff\xa1\x01", "mta-bind"),
    ],
)
def test_bind_malformed(wire: bytes, path: str) -> None:
    with pytest.raises(BERError) as info:
        decode_bind(wire)
    assert info.value.path.startswith(path)


def test_bind_error_malformed() -> None:
    with pytest.raises(BadValueError, match="unknown MTABindError 1"):
        decode_bind_error(b"\x0a\x01\x01")


# ----------------------------------------------------------------------------- names


# PP's recipient /C=GB/ADMD=TEST/PRMD=PEERB/O=Peer/S=Test/
PP_NAME = bytes.fromhex(
    "602730256104130247426206130454455354a20713055045455242830450656572a506800454657374"
)


def test_orname_golden() -> None:
    wire = PP_NAME
    name = decode_orname(decode(wire))
    assert name.text == "/C=GB/ADMD=TEST/PRMD=PEERB/O=Peer/S=Test/"
    assert encode_orname(name) == wire


def test_orname_extras_kept() -> None:
    address = ORAddress(
        country="234", admd=" ", common_name="Jo (a) x@y", terminal_type="g3fax", ddas=(("T", "v"),)
    )
    odd_attribute = b"\x30\x08\x80\x01\x02\xa1\x03\x14\x01x"  # teletex-common-name
    name = ORName(address=address, directory_name=b"\xa0\x02\x30\x00", extra=(odd_attribute,))
    back = decode_orname(decode(encode_orname(name)))
    assert back == name
    assert back.text == "/C=234/ADMD= /CN=Jo (l)a(r) x(a)y/T-TY=g3fax/DDA:T=v/"


@given(oraddresses())
def test_oraddress_round_trip(address: ORAddress) -> None:
    assert decode_orname(decode(encode_orname(address))).address == address


def test_mts_identifier() -> None:
    text = "/C=GB/ADMD= /PRMD=Acme/;local;id/1"
    wire = encode_mts_identifier(text)
    assert wire[:4] == b"\x64\x1f\x63\x11"
    assert decode_mts_identifier(decode(wire)) == text


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        (b"\x60\x00", "$"),  # no standard attributes
        (b"\x60\x04\x30\x02\x83\x00", "$.built-in-standard-attributes"),  # no country
        (b"\x60\x06\x30\x04\x61\x02\x04\x00", "$.built-in-standard-attributes[0].country-name"),
        (b"\x60\x07\x30\x05\x61\x03\x13\x01G", "$"),  # bad country
        (b"\x60\x03\x30\x01\x00", "$[0][0]"),
        (b"\x60\x06\x30\x04\x87\x02ab", "$.built-in-standard-attributes[0]"),
    ],
)
def test_orname_malformed(wire: bytes, path: str) -> None:
    with pytest.raises(BERError) as info:
        decode_orname(decode(wire))
    assert info.value.path == path


# ----------------------------------------------------------------------------- PP vectors


def _tsdus(stream: bytes) -> list[bytes]:
    """Session TSDUs out of TPKT + TP0 DT (02 F0 EOT)."""
    out: list[bytes] = []
    pending, pos = b"", 0
    while pos < len(stream):
        size = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        tpdu = stream[pos + 4 : pos + size]
        pos += size
        if tpdu[1] == 0xF0:
            pending += tpdu[3:]
            if tpdu[2] & 0x80:
                out.append(pending)
                pending = b""
    return out


def _user_data(tsdu: bytes) -> bytes:
    for spdu in decode_tsdu(tsdu):
        data = spdu.user_data or spdu.user_information
        if data:
            return bytes(data)
    raise AssertionError("no user data")


def _pp(name: str) -> tuple[Element, Element, bytes]:
    """(bind argument, bind result, MTS-APDU bytes) out of a PP capture."""
    (stream,) = tcp_streams(PP / name)
    out, back = _tsdus(stream.client_to_server), _tsdus(stream.server_to_client)
    cn, ac, dt = _user_data(out[0]), _user_data(back[0]), _user_data(out[2])
    if "x410" in name:
        # PConnect 31 { A0 mode, A1 { …, A3 { A0 bind } } }; PAccept A1 { …, A2 { A0 result } }
        argument = decode(cn).child(context(1, True)).child(context(3, True)).child(0).child(0)
        result = decode(ac).child(context(1, True)).child(context(2, True)).child(0).child(0)
        return argument, result, dt

    def rtse(ppdu: bytes, acse_field: int, open_field: int, tag: int) -> Element:
        # CP/CPA 31 { …, A2 { …, 61 { 30 { 02 ctx, A0 AARQ/AARE } } } }
        user_data = decode(ppdu).child(context(2, True)).child(application(1, True))
        apdu = user_data.child(0).child(context(0, True)).child(0)  # AARQ / AARE
        rts = apdu.child(context(30, True)).child(0).child(context(0, True)).child(0)
        assert rts.tag == context(acse_field, True)
        # RTORQ/RTOAC { …, A3/A2 { A0 open { [16]/[17] EXPLICIT bind } } }
        field = rts.child(context(open_field, True)).child(0).child(0)
        return unwrap(bytes(field.raw), tag)

    argument = rtse(cn, 16, 3, 16)
    result = rtse(ac, 17, 2, 17)
    # P-DATA: 61 { 30 { 02 ctx, A0 RTTR OCTET STRING { EXTERNAL { 02 05, A0 MTS-APDU } } } }
    rttr = decode(dt).child(0).child(context(0, True)).child(0).expect(OCTET_STRING)
    external = decode(rttr.as_octets())
    assert external.child(0).as_int() == 5  # id-as-mtse
    return argument, result, bytes(external.child(context(0, True)).child(0).raw)


PP_FILES = ["msg88.pcap", "msgx410.pcap"]


@pytest.mark.skipif(not (PP / "msg88.pcap").exists(), reason="PP vectors not present")
@pytest.mark.parametrize("name", PP_FILES)
def test_pp_vectors(name: str) -> None:
    argument, result, apdu = _pp(name)
    bind = decode_bind(argument)
    assert bind.name == "PPTEST-MTA" and bind.password == b"pppass"
    assert bind.security_context is None
    answer = decode_bind(result)
    assert answer.name == "PEERB-MTA" and answer.password == b"peerbpass"

    message = decode_mts_apdu(apdu)
    assert isinstance(message, P1Message)
    env = message.envelope.envelope
    assert env.mts_id.startswith("/C=GB/ADMD=TEST/PRMD=PPTEST/;pp.peer.te.")
    assert env.originator == "/C=GB/ADMD=TEST/PRMD=PPTEST/S=Sender/"
    assert env.recipients == [
        Recipient(
            address="/C=GB/ADMD=TEST/PRMD=PEERB/O=Peer/S=Test/",
            originally_specified_number=1,
            responsibility=True,
            report_request=ReportRequest.NON_DELIVERY,
            mta_report_request=ReportRequest.NON_DELIVERY,
        )
    ]
    assert env.content_type == ContentType.P22
    assert env.encoded_information_types == ["ia5-text"]
    (hop,) = env.trace
    assert hop.domain == "/C=GB/ADMD=TEST/PRMD=PPTEST/" and hop.action == "relayed"
    assert hop.arrival > 1.7e9
    (ext,) = env.extensions  # internal-trace-information, not critical
    assert ext.type == "38" and ext.critical_for == [] and b"pp.peer.test" in ext.value
    assert not unsupported_critical(env)
    assert message.envelope.unknown == ()
    subject = b"x400peer test IPM via PP x400out88 (1988" + (b")" if "88" in name else b"-X410)")
    assert subject in message.content
    assert message.content[:2] == b"\xa0\x82"  # ipm [0]

    again = encode_mts_apdu(message)
    back = decode_mts_apdu(again)
    assert isinstance(back, P1Message)
    assert back.envelope == message.envelope and back.content == message.content
    # PP sends indefinite lengths, a segmented content and 9 per-recipient indicator
    # bits (we send 8): apart from those, our encoding is PP's, field for field.
    assert again != apdu
    assert encode_mts_apdu(back) == again
    ours, theirs = decode(again), decode(_definite(decode(apdu)))
    assert ours.child(1).raw == theirs.child(1).raw
    pp_fields = [bytes(c.raw) for c in theirs.child(0)]
    our_fields = [bytes(c.raw) for c in ours.child(0)]
    assert our_fields[:-1] == pp_fields[:-1]
    # per-recipient-fields A2 { 31 { … } }: only the indicators differ
    assert pp_fields[-1].endswith(b"\x81\x03\x07\xa8\x00")
    assert our_fields[-1][4:] == pp_fields[-1][4:-5] + b"\x81\x02\x00\xa8"


def _definite(element: Element) -> bytes:
    """The same values with definite lengths and a primitive OCTET STRING."""
    if element.tag == OCTET_STRING.as_constructed():
        return encode_tlv(OCTET_STRING, element.as_octets())
    if element.tag.constructed:
        return encode_tlv(element.tag, b"".join(_definite(c) for c in element))
    return bytes(element.raw)


# ----------------------------------------------------------------------------- envelope

SAMPLE = Envelope(
    mts_id="/C=GB/ADMD= /PRMD=Acme/;42.x",
    originator="/C=GB/ADMD= /PRMD=Acme/S=Smith/",
    recipients=[
        Recipient(
            address="/C=DE/ADMD=Viat/O=Firm/OU1=A/S=Doe/G=J/",
            originally_specified_number=1,
            report_request=ReportRequest.ALWAYS,
            mta_report_request=ReportRequest.NONE,
            responsibility=False,
            explicit_conversion=3,
            extensions=[Extension(type="1", critical_for=["transfer"], value=b"\x05\x00")],
        ),
        Recipient(address="/C=GB/ADMD= /PRMD=Acme/S=Two/", originally_specified_number=2),
    ],
    content_type=ContentType.P772,
    content_id="cid 1",
    encoded_information_types=["ia5-text", "bit-12", "oid:1.2.3"],
    priority=Priority.URGENT,
    per_message_indicators=["alternate-recipient-allowed", "bit-7"],
    deferred_delivery=1_800_000_000.0,
    trace=[
        TraceElement(domain="/C=GB/ADMD= /PRMD=Acme/", arrival=1_700_000_000.0),
        TraceElement(
            domain="/C=DE/ADMD=Viat/",
            arrival=1_700_000_100.0,
            action="rerouted",
            attempted_domain="/C=FR/ADMD=Atlas/",
            converted_eits=["teletex"],
        ),
    ],
    extensions=[
        Extension(type="1.2.840.1", critical_for=["transfer", "delivery"], value=b"\x04\x01x"),
        Extension(type="38"),
    ],
)


def test_envelope_round_trip_all_fields() -> None:
    wire = encode_envelope(SAMPLE)
    decoded = decode_envelope(decode(wire))
    assert decoded.envelope == SAMPLE
    assert encode_envelope(decoded) == wire
    critical = unsupported_critical(SAMPLE)
    assert [e.type for e in critical] == ["1.2.840.1", "1"]
    assert unsupported_critical(SAMPLE, {"1", "1.2.840.1"}) == []
    assert [e.type for e in unsupported_critical(SAMPLE, critical_for="delivery")] == ["1.2.840.1"]


def test_unknown_fields_survive() -> None:
    wire = encode_envelope(SAMPLE)
    element = decode(wire)
    bilateral = b"\xa1\x05\x30\x03\x02\x01\x07"
    future = b"\x9f\x40\x01\x00"
    patched = bytes(element.value) + bilateral + future
    decoded = decode_envelope(decode(encode_tlv(SET, patched)))
    assert set(decoded.unknown) == {bilateral, future}
    again = decode_envelope(decode(encode_envelope(decoded)))
    assert again.envelope == SAMPLE and set(again.unknown) == {bilateral, future}


def test_message_and_raw_apdus() -> None:
    message = P1Message(envelope=TransferEnvelope(envelope=SAMPLE), content=b"\xa0\x00")
    wire = encode_mts_apdu(message)
    assert wire[:1] == b"\xa0"
    back = decode_mts_apdu(wire)
    assert isinstance(back, P1Message) and back.content == b"\xa0\x00"
    assert back.envelope.envelope == SAMPLE
    report = b"\xa1\x04\x31\x00\x31\x00"
    assert decode_mts_apdu(report) == P1Raw(kind="report", data=report)
    assert encode_mts_apdu(P1Raw(kind="probe", data=b"\xa2\x00")) == b"\xa2\x00"
    with pytest.raises(BadValueError, match="a report holds"):
        decode_mts_apdu(b"\xa1\x02\x31\x00")


def _envelope_items(envelope: Envelope) -> list[bytes]:
    return [bytes(c.raw) for c in decode(encode_envelope(envelope))]


def _set(items: list[bytes]) -> bytes:
    body = b"".join(items)
    return b"\x31\x82" + len(body).to_bytes(2, "big") + body


@pytest.mark.parametrize(
    ("first", "replacement", "error", "path"),
    [
        (0xA2, None, "without per-recipient-fields", "envelope"),
        (0x64, None, "without mts-id", "envelope"),
        (0x69, None, "without trace-information", "envelope"),
        (0x47, b"\x47\x01\x07", "priority 7", "envelope.priority"),
        (0x64, b"\x64\x02\x16\x00", "missing global-domain-identifier", "envelope.message-"),
        (0x69, b"\x69\x04\x30\x02\x05\x00", "expected .APPLICATION 3.", "envelope.trace-"),
        (0xA3, b"\xa3\x05\x30\x03\x81\x01\x00", "extension type", "envelope.extensions"),
        (0xA2, b"\xa2\x04\x31\x02\x80\x00", "missing recipient-name", "envelope.per-"),
    ],
)
def test_envelope_malformed(first: int, replacement: bytes | None, error: str, path: str) -> None:
    items = _envelope_items(SAMPLE)
    changed = [i if i[0] != first else replacement for i in items]
    wire = _set([i for i in changed if i is not None])
    with pytest.raises(BERError, match=error) as info:
        decode_envelope(decode(wire, name="envelope"))
    assert info.value.path.startswith(path)


# ----------------------------------------------------------------------------- properties


def _pp_apdu() -> bytes:
    return (
        _pp("msgx410.pcap")[2]
        if (PP / "msgx410.pcap").exists()
        else encode_mts_apdu(P1Message(envelope=TransferEnvelope(envelope=SAMPLE), content=b"x"))
    )


PP_APDU = _pp_apdu()
SAMPLE_APDU = encode_mts_apdu(P1Message(envelope=TransferEnvelope(envelope=SAMPLE), content=b"c"))


def _decode_any(data: bytes) -> None:
    with contextlib.suppress(BERError):
        apdu = decode_mts_apdu(data)
        # whatever is accepted re-encodes to the same values
        again = decode_mts_apdu(encode_mts_apdu(apdu))
        assert again == apdu
    with contextlib.suppress(BERError):
        bind = decode_bind(data)
        assert decode_bind(encode_bind(bind)) == bind
    with contextlib.suppress(BERError):
        decode_bind_error(data)
    with contextlib.suppress(BERError):
        name = decode_orname(decode(data))
        assert decode_orname(decode(encode_orname(name))) == name


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_any(data)


@settings(max_examples=500)
@given(
    st.sampled_from([PP_APDU, SAMPLE_APDU, PP_BIND, PP_NAME]),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=4),
    st.integers(0, 3),
)
def test_fuzz_mutated_vectors(base: bytes, at: int, junk: bytes, mode: int) -> None:
    at %= len(base)
    if mode == 0:
        data = base[:at] + junk + base[at + len(junk) :]
    elif mode == 1:
        data = base[:at] + junk + base[at:]
    elif mode == 2:
        data = base[:at] + base[at + len(junk) :]
    else:
        data = base[:at]
    _decode_any(data)


_ia5 = st.characters(min_codepoint=32, max_codepoint=126)
_times = st.integers(0, 2_400_000_000).map(float)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    recipients = [
        Recipient(
            address=str(address),
            originally_specified_number=n,
            responsibility=draw(st.booleans()),
            report_request=draw(st.sampled_from(ReportRequest)),
            mta_report_request=draw(st.sampled_from(ReportRequest)),
            explicit_conversion=draw(st.none() | st.integers(0, 20)),
        )
        for n, address in enumerate(draw(st.lists(oraddresses(), min_size=1, max_size=3)), 1)
    ]
    gdi = draw(oraddresses())
    domain = ORAddress(country=gdi.country, admd=gdi.admd, prmd=gdi.prmd)
    return Envelope(
        mts_id=f"{domain};{draw(st.text(_ia5, max_size=20))}",
        originator=str(draw(oraddresses())),
        recipients=recipients,
        content_type=draw(st.sampled_from([ContentType.P2, ContentType.P22, ContentType.P772])),
        content_id=draw(st.none() | st.text("abc 123", min_size=1, max_size=10)),
        priority=draw(st.sampled_from(Priority)),
        deferred_delivery=draw(st.none() | st.integers(0, 2_400_000_000).map(float)),
        # named bits come back in bit order
        per_message_indicators=draw(
            st.sampled_from([[], ["disclosure-of-recipients", "content-return-request"], ["bit-7"]])
        ),
        trace=[TraceElement(domain=str(domain), arrival=draw(_times))],
        extensions=draw(
            st.lists(
                st.builds(
                    Extension,
                    type=st.sampled_from(["1", "38", "1.3.6.1.4"]),
                    critical_for=st.sampled_from([[], ["transfer"], ["submission", "delivery"]]),
                    value=st.sampled_from([b"", b"\x05\x00", b"\x30\x03\x02\x01\x01"]),
                ),
                max_size=2,
            )
        ),
    )


@settings(max_examples=150)
@given(envelopes())
def test_generated_envelopes_round_trip(envelope: Envelope) -> None:
    wire = encode_envelope(envelope)
    assert decode_envelope(decode(wire)).envelope == envelope
