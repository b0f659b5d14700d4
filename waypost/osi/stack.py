"""One P1 association as a sans-I/O object: transport → session → (presentation → ACSE →) RTSE.

    assoc = Association(role=Role.RESPONDER, mode=Mode.NORMAL_1988)
    assoc.receive_data(tcp_bytes)            # b"" = TCP EOF
    event = assoc.next_event()               # an event or NEED_DATA
    tcp_out = assoc.send(Accept(bind_result=b"\\x05\\x00"))
    tcp_out += assoc.data_to_send()          # automatic replies (CC, MIA, DN, aborts)

Each layer is its own object, built alone (`TransportConnection`,
`SessionConnection`, `RtseSender`/`RtseReceiver`, and the layers above the
session of one mode: `NormalMode` for 1988 presentation + ACSE + RTSE,
`X410Mode` for RTS straight on session, see `waypost.osi.upper`); this module
only routes events between them. The bind argument/result/error and the
MTS-APDUs stay opaque BER bytes.

Replies the stack makes without being asked (the transport CC, minor-sync
acks, the DN answering a release, aborts after a peer's protocol error) are
queued: `send()` returns them with its own bytes, and `data_to_send()` drains
them after `next_event()`. In CLOSED or ERROR the driver writes what is queued
and closes TCP. A peer's protocol error (a `RemoteProtocolError`, raised
where it was found) never raises: it becomes an `Aborted` event naming the
layer, the abort that layer calls for is queued, and the state becomes ERROR.
Our own misuse raises `LocalProtocolError`; any other exception is a bug and
propagates. `send()` takes a `SendEvent`, `next_event()` gives a `ReceiveEvent`.

Monologue: the initiator sends, the responder receives. Two-way-alternate
(`two_way_alternate=True` on the initiator): the turn is the session data,
minor and major tokens; `RequestTurn` (RTTP in a Please Tokens) and `GiveTurn`
(Give Tokens) move it, and whoever holds it may `Transfer`. One transfer at a
time.

Recovery (X.228): every CN names its session connection (`Open.connection_id`).
When a connection is lost mid-transfer, `interrupted()` gives the checkpoint
the receiver had secured; the initiator opens a new association with
`Open(recover=…)` (RTORQ connectionData recover, no bind), the responder
answers a `RecoverRequest` with `AcceptRecovery(checkpoint)` or refuses
(cannot-recover), and `Resume` continues the transfer with an activity resume,
sending only what follows the checkpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from waypost.osi import rtse as r
from waypost.osi import session as s
from waypost.osi import transport as t
from waypost.osi import transport_events as te
from waypost.osi.errors import (
    NEED_DATA,
    Layer,
    LocalProtocolError,
    NeedData,
    RemoteProtocolError,
)
from waypost.osi.presentation import PresentationConnection
from waypost.osi.rtse_transfer import DEFAULT_ACTIVITY_ID, RtseReceiver, RtseSender, TransferState
from waypost.osi.stack_events import (
    Abort,
    Aborted,
    Accept,
    Accepted,
    AcceptRecovery,
    AssociationSettings,
    ConfirmTransfer,
    ConnectionClosed,
    Event,
    GiveTurn,
    Mode,
    Open,
    OpenRequest,
    ReceiveEvent,
    RecoverRequest,
    Recovery,
    Refuse,
    Refused,
    Release,
    Released,
    RequestTurn,
    Resume,
    Role,
    Selectors,
    SendEvent,
    State,
    Transfer,
    TransferConfirmed,
    TransferReceived,
    TurnGiven,
    TurnRequested,
)
from waypost.osi.upper import UpperLayers
from waypost.osi.upper_normal import ID_AC_MTS_TRANSFER, NormalMode
from waypost.osi.upper_x410 import X410Mode

__all__ = [
    "ID_AC_MTS_TRANSFER",
    "NEED_DATA",
    "Abort",
    "Aborted",
    "Accept",
    "AcceptRecovery",
    "Accepted",
    "Association",
    "AssociationSettings",
    "ConfirmTransfer",
    "ConnectionClosed",
    "Event",
    "GiveTurn",
    "Layer",
    "LocalProtocolError",
    "Mode",
    "NeedData",
    "Open",
    "OpenRequest",
    "ReceiveEvent",
    "RecoverRequest",
    "Recovery",
    "Refuse",
    "Refused",
    "Release",
    "Released",
    "RemoteProtocolError",
    "RequestTurn",
    "Resume",
    "Role",
    "Selectors",
    "SendEvent",
    "State",
    "Transfer",
    "TransferConfirmed",
    "TransferReceived",
    "TurnGiven",
    "TurnRequested",
]

_TD_PROTOCOL_ERROR: Final = s.TD_RELEASE | s.TD_PROTOCOL_ERROR
_TD_USER_ABORT: Final = s.TD_RELEASE | s.TD_USER_ABORT
#: The turn of X.228 is the data, minor-sync and major/activity tokens together.
_TURN_TOKENS: Final = s.TOKEN_DATA | s.TOKEN_MINOR | s.TOKEN_MAJOR


class Association:
    """One P1 association, either role, 1988 normal mode or X.410-1984 mode."""

    def __init__(
        self, *, role: Role, mode: Mode, settings: AssociationSettings | None = None
    ) -> None:
        self.role = role
        self.mode = mode
        self.settings = settings or AssociationSettings()
        self.state = State.IDLE
        self.transport = t.TransportConnection(
            role=t.Role(role.value), settings=self.settings.transport
        )
        self.session = s.SessionConnection(
            s.Role(role.value),
            max_tsdu_size=self.settings.max_tsdu_size,
            max_buffered=self.settings.max_session_buffered,
        )
        #: The layers above the session: how this mode carries RTSE (waypost.osi.upper).
        self.upper: UpperLayers = NormalMode() if mode is Mode.NORMAL_1988 else X410Mode()
        self.receiver = RtseReceiver(max_apdu_size=self.settings.max_apdu_size)
        self.sender: RtseSender | None = None
        #: Negotiated RTSE parameters (set once open).
        self.checkpoint_size = 0
        self.window_size = 0
        self.dialogue_mode = r.DialogueMode.MONOLOGUE
        self.selectors = Selectors()
        self._out = bytearray()
        self._events: deque[ReceiveEvent] = deque()
        self._bind_argument: bytes | None = None
        self._recover: Recovery | None = None
        #: This session connection's identifier: ours as initiator, the peer's CN's as
        #: responder (None when the CN named none).
        self.connection_id: r.SessionConnectionIdentifier | None = None
        self._rtorq: r.RTORQ | None = None
        self._requirements = s.RTSE_REQUIREMENTS
        self._finished = False

    @property
    def presentation(self) -> PresentationConnection | None:
        """The presentation connection in 1988 mode; None in X.410 mode."""
        return self.upper.presentation

    # ------------------------------------------------------------------ public API

    def data_to_send(self) -> bytes:
        """Bytes queued by automatic replies, to write to TCP."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        """Bytes read from TCP; b"" means the peer closed its side."""
        if self._finished or self.state is State.ERROR:
            return
        try:
            self.transport.receive_data(data)
        except RemoteProtocolError as exc:
            self._peer_error(exc)

    def next_event(self) -> ReceiveEvent | NeedData:
        """The next event from the peer, or NEED_DATA.

        Only the peer's protocol errors (`RemoteProtocolError`, each raised where the
        fault was found) become an `Aborted`; anything else is a bug and propagates.
        """
        while not self._events:
            if self._finished or self.state is State.ERROR:
                return NEED_DATA
            try:
                if not self._step():
                    return NEED_DATA
            except RemoteProtocolError as exc:
                self._peer_error(exc)
        return self._events.popleft()

    def send(self, event: SendEvent) -> bytes:
        """Act on a user event; the TCP bytes to write (with anything queued before).

        Misuse (an event this state or role does not allow) raises `LocalProtocolError`.
        """
        if isinstance(event, Transfer):  # the events of every transfer first
            self._send_transfer(event)
        elif isinstance(event, ConfirmTransfer):
            self._send_confirm()
        elif isinstance(event, Open):
            self._send_open(event)
        elif isinstance(event, Accept | AcceptRecovery):
            self._send_accept(event)
        elif isinstance(event, Resume):
            self._send_transfer(event)
        elif isinstance(event, Refuse):
            self._send_refuse(event)
        elif isinstance(event, Release):
            self._send_release()
        elif isinstance(event, Abort):
            self._send_user_abort(event)
        elif isinstance(event, RequestTurn | GiveTurn):
            self._send_turn(event)
        else:  # a received event handed back by a caller that is not type-checked
            raise LocalProtocolError(
                Layer.USER, f"{type(event).__name__} is not sent, only received"
            )
        return self.data_to_send()

    # ------------------------------------------------------------------ sending helpers

    def _local_error(self, message: str) -> LocalProtocolError:
        return LocalProtocolError(Layer.USER, message)

    def _expect(self, state: State, role: Role, what: str) -> None:
        if self.state is not state or self.role is not role:
            raise self._local_error(
                f"cannot {what} in state {self.state.name} as {self.role.value}"
            )

    def _session_out(self, event: s.Event) -> None:
        for tsdu in self.session.send(event):
            self._out += self.transport.send_data(tsdu)

    def _send_open(self, event: Open) -> None:
        self._expect(State.IDLE, Role.INITIATOR, "open")
        sel = self.settings.selectors
        self._bind_argument = event.bind_argument
        self._recover = event.recover
        self.connection_id = event.connection_id
        self._out += self.transport.send(
            t.ConnectRequest(
                calling_tsel=sel.calling_tsel,
                called_tsel=sel.called_tsel,
                max_tpdu_size=self.settings.max_tpdu_size,
            )
        )
        self.state = State.CONNECTING

    def _send_connect(self) -> None:
        """After the CC: the session CN with the RTORQ (AARQ/CP or PConnect)."""
        assert self._bind_argument is not None
        data: r.ConnectionData = r.Open(value=self._bind_argument)
        if self._recover is not None:
            data = r.Recover(identifier=self._recover.identifier)
        sel = self.settings.selectors
        self._session_out(
            s.ConnectRequest(
                calling_ssel=sel.calling_ssel,
                called_ssel=sel.called_ssel,
                user_data=self.upper.connect(self.settings, data),
                connection_id=_session_id(self.connection_id),
            )
        )

    def _send_accept(self, event: Accept | AcceptRecovery) -> None:
        self._expect(State.AWAIT_ACCEPT, Role.RESPONDER, "accept")
        rq = self._rtorq
        assert rq is not None
        recovering = isinstance(rq.connection_data, r.Recover)
        if recovering != isinstance(event, AcceptRecovery):
            raise self._local_error(
                "a recovery is answered with AcceptRecovery, an open with Accept"
            )
        data: r.ConnectionData
        if isinstance(event, AcceptRecovery):
            data = rq.connection_data  # recover, naming the same session connection
            self.receiver.expect_resume(event.checkpoint)
        else:
            data = r.Open(value=event.bind_result)
        mine = self.settings.checkpoint_size
        self.checkpoint_size = min(rq.checkpoint, mine) if rq.checkpoint and mine else 0
        self.window_size = min(rq.window, self.settings.window_size)
        self.dialogue_mode = rq.mode
        if rq.mode is r.DialogueMode.TWO_WAY_ALTERNATE:
            self.sender = RtseSender(
                checkpoint_size=self.checkpoint_size, window_size=self.window_size
            )
        user_data = self.upper.accept(
            checkpoint_size=self.checkpoint_size,
            window_size=self.window_size,
            data=data,
            responding_psel=self.selectors.called_psel,
        )
        self._session_out(
            s.ConnectAccept(
                responding_ssel=self.selectors.called_ssel,
                requirements=self._requirements,
                user_data=user_data,
            )
        )
        self.state = State.OPEN

    def _send_refuse(self, event: Refuse) -> None:
        self._expect(State.AWAIT_ACCEPT, Role.RESPONDER, "refuse")
        user_data = self.upper.refuse(event.reason, event.bind_error)
        self._session_out(s.Refuse(reason=2, user_data=user_data))
        self.state = State.CLOSED

    def _send_transfer(self, event: Transfer | Resume) -> None:
        if self.state is not State.OPEN or self.sender is None or not self.has_turn:
            raise self._local_error(
                f"cannot transfer in state {self.state.name} as {self.role.value}"
                " without the turn (monologue: only the initiator sends)"
            )
        payload = self.upper.transfer_payload(event.apdu)
        if isinstance(event, Resume):
            if self._recover is None:
                raise self._local_error("Resume needs an association opened to recover")
            old = event.recovery.checkpoint.activity_id
            events = self.sender.resume(
                payload,
                event.recovery.checkpoint,
                activity_id=b"\x02" if old == DEFAULT_ACTIVITY_ID else DEFAULT_ACTIVITY_ID,
                old_connection=_session_id(event.recovery.identifier),
            )
        else:
            events = self.sender.transfer(payload)
        self._rtse_out(events)

    def interrupted(self) -> Recovery | None:
        """After the connection was lost mid-transfer: what a new association may resume
        (this side's checkpoint on this session connection), or None."""
        if self.connection_id is None:
            return None
        if self.role is Role.RESPONDER:
            point = self.receiver.interrupted()
        else:
            point = self.sender.interrupted() if self.sender is not None else None
        if point is None:
            return None
        return Recovery(identifier=self.connection_id, checkpoint=point)

    def _rtse_out(self, events: list[s.Event]) -> None:
        for ev in events:
            if isinstance(ev, s.Data):
                self._session_out(s.Data(payload=self.upper.data(ev.payload)))
            else:
                self._session_out(ev)

    def _send_confirm(self) -> None:
        if self.state is not State.OPEN or self.receiver.state is not TransferState.AWAIT_CONFIRM:
            raise self._local_error("no received transfer awaits confirmation")
        self._rtse_out(self.receiver.confirm())

    @property
    def has_turn(self) -> bool:
        """We hold the turn (the session data token; in monologue, the initiator always)."""
        return self.state is State.OPEN and bool(self.session.tokens & s.TOKEN_DATA)

    def _send_turn(self, event: RequestTurn | GiveTurn) -> None:
        if (
            self.state is not State.OPEN
            or self.dialogue_mode is not r.DialogueMode.TWO_WAY_ALTERNATE
        ):
            raise self._local_error("turns exist only in an open two-way-alternate association")
        if isinstance(event, GiveTurn):
            busy = self.sender is not None and self.sender.state is not TransferState.IDLE
            if not self.has_turn or busy:
                raise self._local_error("cannot give a turn we do not hold, or mid-transfer")
            self._session_out(s.GiveTokens(tokens=self.session.tokens & _TURN_TOKENS))
            return
        if self.has_turn:
            raise self._local_error("we hold the turn already")
        user_data = self.upper.turn_please(event.priority)
        self._session_out(s.PleaseTokens(tokens=_TURN_TOKENS, user_data=user_data))

    def _send_release(self) -> None:
        self._expect(State.OPEN, Role.INITIATOR, "release")
        if self.sender is not None and self.sender.state is not TransferState.IDLE:
            raise self._local_error("cannot release during a transfer")
        self._session_out(s.Finish(user_data=self.upper.release()))
        self.state = State.RELEASING

    def _send_user_abort(self, event: Abort) -> None:
        if self.state in (State.CLOSED, State.ERROR) or (
            self.state is State.IDLE and self.role is Role.INITIATOR
        ):
            raise self._local_error(f"cannot abort in state {self.state.name}")
        self._abort_out(lambda: self.upper.user_abort(event.reason), _TD_USER_ABORT)
        self.state = State.CLOSED

    # ------------------------------------------------------------------ aborts

    def _abort_out(self, user_data: Callable[[], bytes], reason: int) -> None:
        """Queue the abort: a session AB if the session is up, else a transport DR
        (`user_data` is built only for an AB: below the session there is no room for it)."""
        if self.transport.state is not t.State.OPEN:
            if self.transport.state in (t.State.CR_RECEIVED, t.State.ERROR):
                self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_PROTOCOL_ERROR))
            return
        if self.session.state in (s.State.IDLE, s.State.CLOSED, s.State.ERROR):
            self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_NORMAL))
            return
        self._session_out(s.Abort(reason=reason, user_data=user_data()))

    def _peer_error(self, exc: RemoteProtocolError) -> None:
        """The peer broke a protocol: queue the abort of the layer that found it, report
        it, go to ERROR."""
        abort = exc.abort
        try:
            if isinstance(abort, t.DisconnectRequest | t.Error):
                self._out += self.transport.send(abort)
            elif exc.layer is Layer.SESSION and isinstance(abort, bytes):
                if self.transport.state is t.State.OPEN:  # the session's own AB SPDU
                    self._out += self.transport.send(t.Data(payload=abort))
            else:
                self._abort_out(lambda: self.upper.protocol_error_abort(exc), _TD_PROTOCOL_ERROR)
        except LocalProtocolError:
            pass  # nothing more can be said to the peer: closing TCP is the abort
        self.state = State.ERROR
        self._events.append(Aborted(layer=exc.layer, reason=str(exc), by_peer=False))

    # ------------------------------------------------------------------ receiving

    def _step(self) -> bool:
        ev = self.session.next_event()
        if not isinstance(ev, NeedData):
            self._on_session(ev)
            return True
        tev = self.transport.next_event()
        if isinstance(tev, NeedData):
            return False
        self._on_transport(tev)
        return True

    def _on_transport(self, ev: t.Event) -> None:
        if isinstance(ev, t.Data):
            if self.state is State.CLOSED:
                return  # sent before the peer saw our refusal, abort or release: stale
            self.session.receive_tsdu(ev.payload)
        elif isinstance(ev, t.ConnectRequest):
            own = self.settings.selectors.called_tsel
            if own and ev.called_tsel != own:
                self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_ADDRESS_UNKNOWN))
                self.state = State.CLOSED
                self._events.append(
                    Aborted(
                        layer=Layer.TRANSPORT, reason="unknown called T-selector", by_peer=False
                    )
                )
                return
            self.selectors = Selectors(calling_tsel=ev.calling_tsel, called_tsel=ev.called_tsel)
            self._out += self.transport.send(
                t.ConnectConfirm(calling_tsel=ev.calling_tsel, called_tsel=ev.called_tsel)
            )
        elif isinstance(ev, t.ConnectConfirm):
            self._send_connect()
        elif isinstance(ev, t.DisconnectRequest | t.Error):
            if self.state is State.CLOSED:
                return  # the DR that follows a release, a refusal or an abort
            what = (
                f"DR reason {ev.reason:#04x}"
                if isinstance(ev, t.DisconnectRequest)
                else f"ER cause {ev.cause:#04x}"
            )
            if self.state is State.CONNECTING and self.transport.peer_reference == 0:
                self._events.append(Refused(bind_error=None, reason=None, layer=Layer.TRANSPORT))
            else:
                self._events.append(Aborted(layer=Layer.TRANSPORT, reason=what))
            self.state = State.CLOSED
        else:
            if self.state not in (State.CLOSED, State.IDLE):
                self._events.append(
                    Aborted(layer=Layer.TRANSPORT, reason="TCP closed before release")
                )
            self.state = State.CLOSED
            self._finished = True
            self._events.append(ConnectionClosed())

    def _on_session(self, ev: s.Event) -> None:
        # The events of every transfer first.
        if isinstance(
            ev, s.Data | s.MinorSync | s.ActivityStart | s.ActivityEnd | s.ActivityResume
        ):
            self._on_transfer_data(ev)
        elif isinstance(ev, s.MinorSyncAck | s.ActivityEndAck):
            self._on_transfer_ack(ev)
        elif isinstance(ev, s.ConnectRequest):
            self._on_connect(ev)
        elif isinstance(ev, s.ConnectAccept):
            self._on_accept(ev)
        elif isinstance(ev, s.Refuse):
            self._on_refuse(ev)
        elif isinstance(ev, s.Finish):
            self._on_finish(ev)
        elif isinstance(ev, s.Disconnect):
            self._on_disconnect(ev)
        elif isinstance(ev, s.Abort):
            self._on_abort(ev)
        elif isinstance(ev, s.AbortAccept):
            self.state = State.CLOSED
        elif isinstance(ev, s.GiveTokens | s.PleaseTokens):
            self._on_tokens(ev)

    def _on_tokens(self, ev: s.GiveTokens | s.PleaseTokens) -> None:
        twa = self.dialogue_mode is r.DialogueMode.TWO_WAY_ALTERNATE
        if isinstance(ev, s.PleaseTokens) and twa and self.state is State.RELEASING:
            return  # it crossed our FN: the release answers it
        if self.state is not State.OPEN or not twa:
            raise RemoteProtocolError(Layer.RTSE, f"{type(ev).__name__}: no turns in monologue")
        if isinstance(ev, s.GiveTokens):
            if self.session.tokens & _TURN_TOKENS == _TURN_TOKENS:
                self._events.append(TurnGiven())
            return
        priority = self.upper.read_turn_please(ev.user_data) if ev.user_data else 0
        self._events.append(TurnRequested(priority=priority))

    def _on_connect(self, ev: s.ConnectRequest) -> None:
        sel = self.selectors
        needed = s.HALF_DUPLEX | s.MINOR_SYNC | s.ACTIVITY_MANAGEMENT
        if ev.requirements & needed != needed:
            raise RemoteProtocolError(
                Layer.SESSION, f"CN requirements {ev.requirements:#06x} lack what RTSE needs"
            )
        self._requirements = ev.requirements & s.RTSE_REQUIREMENTS
        if self.session.tokens & _TURN_TOKENS:
            raise RemoteProtocolError(
                Layer.SESSION, "CN token setting gives the turn to the responder"
            )
        self.connection_id = _rtse_id(ev.connection_id)
        connection = self.upper.read_connect(ev.user_data)
        rq = connection.rtorq
        self._rtorq = rq
        self.selectors = Selectors(
            calling_tsel=sel.calling_tsel,
            called_tsel=sel.called_tsel,
            calling_ssel=ev.calling_ssel,
            called_ssel=ev.called_ssel,
            calling_psel=connection.calling_psel,
            called_psel=connection.called_psel,
        )
        self.state = State.AWAIT_ACCEPT
        if isinstance(rq.connection_data, r.Recover):
            self._events.append(
                RecoverRequest(
                    identifier=rq.connection_data.identifier,
                    checkpoint_size=rq.checkpoint,
                    window_size=rq.window,
                    dialogue_mode=rq.mode,
                    selectors=self.selectors,
                )
            )
            return
        self._events.append(
            OpenRequest(
                bind_argument=connection.bind_argument,
                checkpoint_size=rq.checkpoint,
                window_size=rq.window,
                dialogue_mode=rq.mode,
                application_protocol=rq.application_protocol,
                selectors=self.selectors,
            )
        )

    def _on_accept(self, ev: s.ConnectAccept) -> None:
        ac, result = self.upper.read_accept(ev.user_data)
        recovered = isinstance(ac.connection_data, r.Recover)
        if recovered != (self._recover is not None):
            raise RemoteProtocolError(
                Layer.RTSE,
                "RTOAC recover answers an open" if recovered else "RTOAC without recover",
            )
        if self.session.tokens & _TURN_TOKENS != _TURN_TOKENS:
            raise RemoteProtocolError(
                Layer.SESSION, "AC token setting leaves the initiator without the turn"
            )
        proposed = self.settings.checkpoint_size
        if (ac.checkpoint and not proposed) or ac.checkpoint > proposed:
            raise RemoteProtocolError(
                Layer.RTSE, f"RTOAC checkpoint size {ac.checkpoint} > {proposed}"
            )
        self.checkpoint_size = ac.checkpoint
        self.window_size = min(ac.window, self.settings.window_size)
        self.sender = RtseSender(checkpoint_size=self.checkpoint_size, window_size=self.window_size)
        if self.settings.two_way_alternate:
            self.dialogue_mode = r.DialogueMode.TWO_WAY_ALTERNATE
        self.state = State.OPEN
        self._events.append(
            Accepted(
                bind_result=result,
                checkpoint_size=self.checkpoint_size,
                window_size=self.window_size,
                recovered=recovered,
            )
        )

    def _on_refuse(self, ev: s.Refuse) -> None:
        self.state = State.CLOSED
        rtorj = self.upper.read_refuse(ev.user_data)
        if rtorj is None:
            refused = Refused(bind_error=None, reason=None, layer=Layer.SESSION)
        else:
            refused = Refused(
                bind_error=rtorj.user_data, reason=rtorj.refuse_reason, layer=Layer.RTSE
            )
        self._events.append(refused)
        if self.transport.state is t.State.OPEN:
            self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_NORMAL))

    def _on_transfer_data(self, ev: s.Event) -> None:
        if self.state is not State.OPEN:
            raise RemoteProtocolError(Layer.RTSE, f"{type(ev).__name__} outside the data phase")
        if isinstance(ev, s.Data):
            ev = s.Data(payload=self.upper.read_data(ev.payload))
        self._rtse_out(self.receiver.receive(ev))
        payload = self.receiver.apdu
        if isinstance(ev, s.ActivityEnd) and payload is not None:
            self._events.append(TransferReceived(apdu=self.upper.read_transfer(payload)))

    def _on_transfer_ack(self, ev: s.MinorSyncAck | s.ActivityEndAck) -> None:
        if self.state is not State.OPEN or self.sender is None:
            raise RemoteProtocolError(Layer.RTSE, f"{type(ev).__name__} but nothing was sent")
        self._rtse_out(self.sender.receive(ev))
        if isinstance(ev, s.ActivityEndAck):
            self._events.append(TransferConfirmed())

    def _on_finish(self, ev: s.Finish) -> None:
        if self.state is not State.OPEN or self.role is not Role.RESPONDER:
            raise RemoteProtocolError(Layer.SESSION, "FN from the responder (monologue)")
        answer = self.upper.read_release(ev.user_data)
        self._session_out(s.Disconnect(user_data=answer))
        self.state = State.CLOSED
        self._events.append(Released())

    def _on_disconnect(self, ev: s.Disconnect) -> None:
        self.upper.read_release_answer(ev.user_data)
        self.state = State.CLOSED
        self._events.append(Released())
        self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_NORMAL))

    def _on_abort(self, ev: s.Abort) -> None:
        self.state = State.CLOSED
        said = self.upper.read_abort(ev.user_data)
        layer, reason = said or (Layer.SESSION, f"AB transport-disconnect {ev.reason:#04x}")
        if self.session.state is s.State.AWAIT_SEND_AA:
            self._session_out(s.AbortAccept())
        self._events.append(Aborted(layer=layer, reason=reason))


def _session_id(scid: r.SessionConnectionIdentifier | None) -> s.ConnectionId | None:
    """The session layer's form of an RTSE SessionConnectionIdentifier."""
    if scid is None:
        return None
    return s.ConnectionId(
        calling_ss_user_ref=scid.calling_ss_user_reference,
        common_ref=scid.common_reference.encode("ascii"),
        additional_ref=scid.additional_reference,
    )


def _rtse_id(cid: s.ConnectionId | None) -> r.SessionConnectionIdentifier | None:
    """The RTSE SessionConnectionIdentifier of a CN's connection identifier, if it has
    the calling reference and common reference it needs."""
    if cid is None or not cid.calling_ss_user_ref or not cid.common_ref:
        return None
    try:
        common = cid.common_ref.decode("ascii")
    except UnicodeDecodeError:
        return None
    return r.SessionConnectionIdentifier(
        calling_ss_user_reference=cid.calling_ss_user_ref,
        common_reference=common,
        additional_reference=cid.additional_ref,
    )
