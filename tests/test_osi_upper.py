"""Each mode's layers above the session, built alone: 1988 normal mode (presentation +
ACSE + RTSE, waypost.osi.upper_normal) and X.410-1984 mode (RTSE on the session,
waypost.osi.upper_x410). An initiator's side and a responder's side talk in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost import asn1 as ber
from waypost.osi import acse as a
from waypost.osi import rtse as r
from waypost.osi.errors import Layer, LocalProtocolError, RemoteProtocolError
from waypost.osi.presentation import State as PresentationState
from waypost.osi.presentation_ppdu import PDV
from waypost.osi.stack_events import AssociationSettings, Selectors
from waypost.osi.upper import UpperLayers
from waypost.osi.upper_normal import ID_AC_MTS_TRANSFER, NormalMode
from waypost.osi.upper_x410 import X410Mode

BIND = ber.sequence(ber.encode_string(ber.IA5_STRING, "PEERA-MTA"))
RESULT = ber.sequence(ber.encode_string(ber.IA5_STRING, "PEERB-MTA"))
SETTINGS = AssociationSettings(
    checkpoint_size=30,
    window_size=3,
    selectors=Selectors(calling_psel=b"\x00\x01", called_psel=b"\x00\x02"),
)
RECOVER = r.Recover(
    identifier=r.SessionConnectionIdentifier(
        calling_ss_user_reference=b"MTA", common_reference="20260101000000Z"
    )
)
apdus = st.binary(min_size=1, max_size=600).map(ber.encode_octets)


def _normal_pair() -> tuple[NormalMode, NormalMode]:
    """An initiator and a responder whose presentation connection is up."""
    init, resp = NormalMode(), NormalMode()
    resp.read_connect(init.connect(SETTINGS, r.Open(value=BIND)))
    data = r.Open(value=RESULT)
    init.read_accept(
        resp.accept(checkpoint_size=30, window_size=3, data=data, responding_psel=None)
    )
    return init, resp


def _pair(mode: str) -> tuple[UpperLayers, UpperLayers]:
    if mode == "x410":
        return X410Mode(), X410Mode()
    return _normal_pair()


MODES = ["1988", "x410"]


# --- establishment --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_connect_accept_round_trip(mode: str) -> None:
    init: UpperLayers = NormalMode() if mode == "1988" else X410Mode()
    resp: UpperLayers = NormalMode() if mode == "1988" else X410Mode()
    got = resp.read_connect(init.connect(SETTINGS, r.Open(value=BIND)))
    assert got.bind_argument == BIND
    assert (got.rtorq.checkpoint, got.rtorq.window) == (30, 3)
    if mode == "1988":
        assert (got.calling_psel, got.called_psel) == (b"\x00\x01", b"\x00\x02")
        assert got.rtorq.application_protocol is None
    else:
        assert (got.calling_psel, got.called_psel) == (None, None)
        assert got.rtorq.application_protocol == SETTINGS.application_protocol
    user_data = resp.accept(
        checkpoint_size=10, window_size=2, data=r.Open(value=RESULT), responding_psel=None
    )
    rtoac, result = init.read_accept(user_data)
    assert result == RESULT
    assert (rtoac.checkpoint, rtoac.window) == (10, 2)
    if isinstance(init, NormalMode) and isinstance(resp, NormalMode):
        assert init.presentation.state is PresentationState.CONNECTED
        assert resp.presentation.state is PresentationState.CONNECTED
    else:
        assert init.presentation is None


@pytest.mark.parametrize("mode", MODES)
def test_recovery_carries_no_bind(mode: str) -> None:
    init: UpperLayers = NormalMode() if mode == "1988" else X410Mode()
    resp: UpperLayers = NormalMode() if mode == "1988" else X410Mode()
    got = resp.read_connect(init.connect(SETTINGS, RECOVER))
    assert got.rtorq.connection_data == RECOVER and got.bind_argument == b""
    user_data = resp.accept(checkpoint_size=30, window_size=3, data=RECOVER, responding_psel=None)
    rtoac, result = init.read_accept(user_data)
    assert rtoac.connection_data == RECOVER and result == b""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bind_error", [None, ber.encode_int(2)])
def test_refusal_round_trip(mode: str, bind_error: bytes | None) -> None:
    init: UpperLayers = NormalMode() if mode == "1988" else X410Mode()
    resp: UpperLayers = NormalMode() if mode == "1988" else X410Mode()
    resp.read_connect(init.connect(SETTINGS, r.Open(value=BIND)))
    rtorj = init.read_refuse(resp.refuse(r.RefuseReason.RTS_BUSY, bind_error))
    assert rtorj == r.RTORJ(refuse_reason=r.RefuseReason.RTS_BUSY, user_data=bind_error)


@pytest.mark.parametrize("mode", MODES)
def test_unreadable_refusal_says_nothing(mode: str) -> None:
    assert _pair(mode)[0].read_refuse(b"\x61\x03\x02\x01") is None


def test_normal_mode_refuses_another_application_context() -> None:
    aarq = a.AARQ(
        application_context="2.6.0.1.99",
        user_information=(
            a.External(context_id=3, value=r.encode_rtse_apdu(r.RTORQ(connection_data=RECOVER))),
        ),
    )
    other = NormalMode().presentation.send_connect([PDV(context_id=1, value=a.encode_apdu(aarq))])
    with pytest.raises(RemoteProtocolError) as info:
        NormalMode().read_connect(other)
    assert info.value.layer is Layer.ACSE
    assert "2.6.0.1.99" in str(info.value)
    assert ID_AC_MTS_TRANSFER == "2.6.0.1.6"  # what P1 needs (X.419 A.1)


def test_x410_mode_refuses_a_malformed_connect() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        X410Mode().read_connect(b"\x31\x03\xa0\x01\x00")
    assert info.value.layer is Layer.RTSE
    assert isinstance(info.value.abort, r.RTAB)


# --- data phase -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@given(apdu=apdus)
def test_transfer_round_trip(mode: str, apdu: bytes) -> None:
    init, resp = _pair(mode)
    payload = init.transfer_payload(apdu)
    assert resp.read_transfer(payload) == apdu
    segment = payload[: len(payload) // 2]
    assert resp.read_data(init.data(segment)) == segment


def test_normal_mode_reads_the_long_form_of_the_mtse_external() -> None:
    """Not the form senders write: the full decoder reads it, to the same APDU."""
    _, resp = _normal_pair()
    apdu = ber.encode_octets(b"x" * 5)
    inner = b"\x02\x01\x05\xa0\x81" + bytes((len(apdu),)) + apdu
    assert resp.read_transfer(b"\x28\x81" + bytes((len(inner),)) + inner) == apdu


def test_normal_mode_refuses_an_apdu_in_another_context() -> None:
    _, resp = _normal_pair()
    with pytest.raises(RemoteProtocolError) as info:
        resp.read_transfer(b"\x28\x07\x02\x01\x03\xa0\x02\x05\x00")
    assert info.value.layer is Layer.RTSE
    with pytest.raises(RemoteProtocolError) as info:
        resp.read_transfer(b"\x28\x05\x02\x01\x05\xa0\x05")  # truncated: the decoder's
    assert info.value.layer is Layer.RTSE and info.value.abort is None


def test_normal_mode_refuses_data_in_another_context() -> None:
    init, resp = _normal_pair()
    with pytest.raises(RemoteProtocolError) as info:
        resp.read_data(init.presentation.wrap_one(1, r.encode_rttr(b"x")))
    assert info.value.layer is Layer.PRESENTATION


def test_x410_mode_sends_no_empty_apdu() -> None:
    with pytest.raises(LocalProtocolError):
        X410Mode().transfer_payload(b"")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("priority", [0, 1, 127])
def test_turn_please_round_trip(mode: str, priority: int) -> None:
    init, resp = _pair(mode)
    assert resp.read_turn_please(init.turn_please(priority)) == priority


@pytest.mark.parametrize("mode", MODES)
def test_a_token_please_must_carry_an_rttp(mode: str) -> None:
    init, resp = _pair(mode)
    rttr = r.encode_rttr(b"x")
    data = rttr if init.presentation is None else init.presentation.wrap_one(3, rttr)
    with pytest.raises(RemoteProtocolError) as info:
        resp.read_turn_please(data)
    assert info.value.layer is Layer.RTSE


# --- release and abort ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_release_round_trip(mode: str) -> None:
    init, resp = _pair(mode)
    answer = resp.read_release(init.release())
    init.read_release_answer(answer)
    if init.presentation is None:
        assert init.release() == answer == b""
    else:
        (pdv,) = init.presentation.unwrap(answer)
        assert a.decode_apdu(pdv.value) == a.RLRE(reason=0)


def test_normal_mode_release_needs_rlrq_and_rlre() -> None:
    init, resp = _normal_pair()
    with pytest.raises(RemoteProtocolError) as info:
        init.read_release_answer(init.release())  # an RLRQ where the RLRE belongs
    assert info.value.layer is Layer.ACSE
    answer = resp.read_release(init.release())
    with pytest.raises(RemoteProtocolError) as info:
        resp.read_release(answer)  # an RLRE where the RLRQ belongs
    assert info.value.layer is Layer.ACSE


@pytest.mark.parametrize("mode", MODES)
def test_user_abort_is_an_rtab(mode: str) -> None:
    init, resp = _pair(mode)
    said = resp.read_abort(init.user_abort(r.AbortReason.USER_ERROR))
    assert said == (Layer.RTSE, "RTAB USER_ERROR")


@pytest.mark.parametrize(
    ("layer", "said_1988"),
    [
        (Layer.PRESENTATION, (Layer.PRESENTATION, "ARP UNEXPECTED_PARAMETER")),
        (Layer.ACSE, (Layer.ACSE, "ABRT source 1")),
        (Layer.RTSE, (Layer.RTSE, "RTAB PROTOCOL_ERROR")),
        (Layer.SESSION, None),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_protocol_error_abort_names_the_layer(
    mode: str, layer: Layer, said_1988: tuple[Layer, str] | None
) -> None:
    """1988 mode: the layer at fault says so; X.410 mode has only RTSE to say it with."""
    init, resp = _pair(mode)
    user_data = init.protocol_error_abort(RemoteProtocolError(layer, "fault"))
    said = resp.read_abort(user_data)
    if mode == "x410":
        assert said == (Layer.RTSE, "RTAB PROTOCOL_ERROR")
    else:
        assert said == said_1988
        assert (user_data == b"") == (layer is Layer.SESSION)


def test_protocol_error_abort_keeps_the_layers_own_answer() -> None:
    init, resp = _normal_pair()
    rtab = r.RTAB(abort_reason=r.AbortReason.PERMANENT_PROBLEM)
    user_data = init.protocol_error_abort(RemoteProtocolError(Layer.RTSE, "big", abort=rtab))
    assert resp.read_abort(user_data) == (Layer.RTSE, "RTAB PERMANENT_PROBLEM")
    x410 = X410Mode().protocol_error_abort(RemoteProtocolError(Layer.RTSE, "big", abort=rtab))
    assert r.decode_rtse_apdu(x410) == rtab


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("user_data", [b"", b"\x00", b"\x19\x03\x11\x01\x05"])
def test_unreadable_abort_data_says_nothing(mode: str, user_data: bytes) -> None:
    assert _pair(mode)[1].read_abort(user_data) is None
