"""Fuzz the whole OSI stack (transport, session, presentation, ACSE, RTSE) as the X.400
listener drives it: a responder `Association` fed the input in chunks, in 1988 or X.410
mode, answering what a server answers. Nothing may come out: errors become events."""

from __future__ import annotations

from common import instrumented, run

with instrumented():
    from waypost.osi.rtse_transfer import TransferState
    from waypost.osi.stack import (
        NEED_DATA,
        Accept,
        Association,
        ConfirmTransfer,
        Mode,
        OpenRequest,
        RecoverRequest,
        Refuse,
        Role,
        State,
        TransferReceived,
    )

CHUNKS = (1, 3, 7, 64, 512, 4096, 1 << 16, 1 << 20)


def drain(assoc: Association, *, accept: bool) -> None:
    for _ in range(100_000):
        event = assoc.next_event()
        if event is NEED_DATA:
            return
        if isinstance(event, OpenRequest | RecoverRequest) and assoc.state is State.AWAIT_ACCEPT:
            if accept:
                assoc.send(Accept(bind_result=b"\x31\x00"))
            else:
                assoc.send(Refuse(bind_error=b"\x02\x01\x02"))
        elif (
            isinstance(event, TransferReceived)
            and assoc.state is State.OPEN
            and assoc.receiver.state is TransferState.AWAIT_CONFIRM
        ):
            assoc.send(ConfirmTransfer())
        assoc.data_to_send()
    raise AssertionError("next_event never said NEED_DATA")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    head, body = data[0], data[1:]
    mode = Mode.X410 if head & 1 else Mode.NORMAL_1988
    chunk = CHUNKS[(head >> 1) % len(CHUNKS)]
    accept = not head & 0x10
    assoc = Association(role=Role.RESPONDER, mode=mode)
    for at in range(0, len(body), chunk):
        if assoc.state in (State.CLOSED, State.ERROR):
            break  # the listener closes the socket here
        assoc.receive_data(body[at : at + chunk])
        drain(assoc, accept=accept)
    if assoc.state not in (State.CLOSED, State.ERROR):
        assoc.receive_data(b"")  # EOF
        drain(assoc, accept=accept)
    assoc.data_to_send()


if __name__ == "__main__":
    run(test_one_input)
