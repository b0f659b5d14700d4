"""RTSE recovery of an interrupted transfer (X.228): a new association resumes the transfer
after the last checkpoint the receiver secured, sending only what follows."""

from __future__ import annotations

import pytest
from test_osi_stack import BIND, MODES, RESULT, ConnectionPair, apdu_of, drain

from waypost.osi.rtse import RefuseReason, SessionConnectionIdentifier
from waypost.osi.stack import (
    Accept,
    Accepted,
    AcceptRecovery,
    Association,
    AssociationSettings,
    ConfirmTransfer,
    LocalProtocolError,
    Mode,
    Open,
    OpenRequest,
    RecoverRequest,
    Refuse,
    Refused,
    Resume,
    Transfer,
    TransferConfirmed,
    TransferReceived,
)

SMALL = AssociationSettings(checkpoint_size=1, window_size=3)


def scid(n: int) -> SessionConnectionIdentifier:
    return SessionConnectionIdentifier(
        calling_ss_user_reference=f"WAYPOST-{n}".encode(), common_reference="261124023000Z"
    )


def interrupted_transfer(mode: Mode, apdu: bytes, *, stop_after: int) -> ConnectionPair:
    """Open with a connection id, start `apdu`, deliver only `stop_after` octets of the
    initiator's transfer bytes (and every answer), then lose the connection."""
    pair = ConnectionPair(mode, SMALL, SMALL)
    ievs, revs = pair.send(pair.i, Open(bind_argument=BIND, connection_id=scid(1)))
    assert isinstance(revs[0], OpenRequest)
    assert pair.r.connection_id == scid(1)  # the responder learnt it from the CN
    ievs, _ = pair.send(pair.r, Accept(bind_result=RESULT))
    assert isinstance(ievs[0], Accepted)
    wire = pair.i.send(Transfer(apdu=apdu))
    sent = 0
    while sent < stop_after and wire:
        chunk, wire = wire[:64], wire[64:]
        pair.r.receive_data(chunk)
        sent += len(chunk)
        drain(pair.r)
        answer = pair.r.data_to_send()
        if answer:  # b"" would be TCP's end of file
            pair.i.receive_data(answer)
        drain(pair.i)
        wire += pair.i.data_to_send()
    for side in (pair.i, pair.r):
        side.receive_data(b"")  # TCP lost
        drain(side)
    return pair


@pytest.mark.parametrize("mode", MODES)
def test_interrupted_transfer_resumes_after_the_last_checkpoint(mode: Mode) -> None:
    apdu = apdu_of(20 * 1024)
    lost = interrupted_transfer(mode, apdu, stop_after=9 * 1024)
    sender, receiver = lost.i.interrupted(), lost.r.interrupted()
    assert sender is not None and receiver is not None
    assert sender.identifier == receiver.identifier == scid(1)
    # The sender knows no later checkpoint than the receiver secured.
    assert 0 < sender.checkpoint.serial <= receiver.checkpoint.serial
    assert len(receiver.checkpoint.data) == receiver.checkpoint.offset
    assert sender.checkpoint.offset < len(apdu)

    again = ConnectionPair(mode, SMALL, SMALL)
    _, revs = again.send(again.i, Open(bind_argument=b"", connection_id=scid(2), recover=sender))
    (request,) = revs
    assert isinstance(request, RecoverRequest) and request.identifier == scid(1)
    ievs, _ = again.send(again.r, AcceptRecovery(checkpoint=receiver.checkpoint))
    (accepted,) = ievs
    assert isinstance(accepted, Accepted) and accepted.recovered
    wire = again.i.send(Resume(apdu=apdu, recovery=sender))
    again.r.receive_data(wire)
    ievs, revs = again.pump()
    assert revs == [TransferReceived(apdu=apdu)]  # whole and identical
    ievs, _ = again.send(again.r, ConfirmTransfer())
    assert ievs == [TransferConfirmed()]
    # Only what followed the checkpoint crossed the new connection (plus headers).
    assert len(wire) < len(apdu) - sender.checkpoint.offset + 4096
    # The association goes on as any other: another transfer, then release.
    again.transfer(apdu_of(3000) if mode is Mode.X410 else apdu_of(2000))
    again.release()


@pytest.mark.parametrize("mode", MODES)
def test_recovery_can_be_refused_and_the_transfer_starts_again(mode: Mode) -> None:
    apdu = apdu_of(8 * 1024)
    lost = interrupted_transfer(mode, apdu, stop_after=5 * 1024)
    sender = lost.i.interrupted()
    assert sender is not None
    again = ConnectionPair(mode, SMALL, SMALL)
    again.send(again.i, Open(bind_argument=b"", connection_id=scid(2), recover=sender))
    ievs, _ = again.send(again.r, Refuse(reason=RefuseReason.CANNOT_RECOVER))
    (refused,) = ievs
    assert isinstance(refused, Refused) and refused.reason is RefuseReason.CANNOT_RECOVER


@pytest.mark.parametrize("mode", MODES)
def test_a_resume_of_something_not_held_is_a_protocol_error(mode: Mode) -> None:
    apdu = apdu_of(8 * 1024)
    lost = interrupted_transfer(mode, apdu, stop_after=5 * 1024)
    sender, receiver = lost.i.interrupted(), lost.r.interrupted()
    assert sender is not None and receiver is not None
    again = ConnectionPair(mode, SMALL, SMALL)
    again.send(again.i, Open(bind_argument=b"", connection_id=scid(2), recover=sender))
    # The responder holds a different activity than the one the initiator resumes.
    wrong = type(receiver.checkpoint)(
        activity_id=b"\x09", serial=receiver.checkpoint.serial,
        offset=receiver.checkpoint.offset, data=receiver.checkpoint.data,
    )  # fmt: skip
    again.send(again.r, AcceptRecovery(checkpoint=wrong))
    again.r.receive_data(again.i.send(Resume(apdu=apdu, recovery=sender)))
    _, revs = again.pump()
    assert any(type(e).__name__ == "Aborted" for e in revs)


def test_nothing_to_recover_without_a_secured_checkpoint() -> None:
    lost = interrupted_transfer(Mode.NORMAL_1988, apdu_of(8 * 1024), stop_after=200)
    assert lost.i.interrupted() is None and lost.r.interrupted() is None
    # Nor without a connection id, whatever was secured.
    pair = ConnectionPair(Mode.X410, SMALL, SMALL)
    pair.open()
    assert pair.i.connection_id is None and pair.i.interrupted() is None


def test_resume_needs_a_recovered_association() -> None:
    pair = ConnectionPair(Mode.X410, SMALL, SMALL)
    pair.open()
    point = interrupted_transfer(Mode.X410, apdu_of(8 * 1024), stop_after=5 * 1024).i
    recovery = point.interrupted()
    assert recovery is not None
    with pytest.raises(LocalProtocolError):
        pair.i.send(Resume(apdu=apdu_of(8 * 1024), recovery=recovery))
    assert isinstance(pair.i, Association)
