"""One P1 association as a sans-I/O object: transport → session → (presentation → ACSE →) RTSE.

    assoc = Association(role=Role.RESPONDER, mode=Mode.NORMAL_1988)
    assoc.receive_data(tcp_bytes)            # b"" = TCP EOF
    event = assoc.next_event()               # an event or NEED_DATA
    tcp_out = assoc.send(Accept(bind_result=b"\\x05\\x00"))
    tcp_out += assoc.data_to_send()          # automatic replies (CC, MIA, DN, aborts)

Each layer is its own object, built alone (`TransportConnection`,
`SessionConnection`, `PresentationConnection`, the ACSE and RTSE codecs,
`RtseSender`/`RtseReceiver`); this module only routes events between them.
The bind argument/result/error and the MTS-APDUs stay opaque BER bytes.

Replies the stack makes without being asked (the transport CC, minor-sync
acks, the DN answering a release, aborts after a peer's protocol error) are
queued: `send()` returns them with its own bytes, and `data_to_send()` drains
them after `next_event()`. In CLOSED or ERROR the driver writes what is queued
and closes TCP. A peer's protocol error never raises: it becomes an `Aborted`
event naming the layer, the abort that layer calls for is queued, and the
state becomes ERROR. Our own misuse raises `LocalProtocolError`.

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

import contextlib
from collections import deque
from typing import Final

from waypost import asn1 as ber
from waypost.asn1 import fast
from waypost.osi import acse as a
from waypost.osi import rtse as r
from waypost.osi import session as s
from waypost.osi import transport as t
from waypost.osi import transport_events as te
from waypost.osi.presentation import (
    ACSE,
    ID_AS_MTA_RTSE,
    ID_AS_MTSE,
    P1_CONTEXTS,
    PresentationConnection,
)
from waypost.osi.presentation import LocalProtocolError as PresentationLocalError
from waypost.osi.presentation import State as PresentationState
from waypost.osi.presentation_ppdu import (
    PDV,
    PresentationProtocolError,
    ProviderAbortPPDU,
    UserAbortPPDU,
    decode_abort,
    decode_refuse,
    encode_abort,
)
from waypost.osi.presentation_ppdu import (
    AbortReason as PresentationAbortReason,
)
from waypost.osi.rtse_transfer import DEFAULT_ACTIVITY_ID, RtseReceiver, RtseSender, TransferState
from waypost.osi.stack_events import (
    NEED_DATA,
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
    Layer,
    LocalProtocolError,
    Mode,
    Open,
    OpenRequest,
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
    State,
    Transfer,
    TransferConfirmed,
    TransferReceived,
    TurnGiven,
    TurnRequested,
    _Sentinel,
)

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
    "Open",
    "OpenRequest",
    "RecoverRequest",
    "Recovery",
    "Refuse",
    "Refused",
    "Release",
    "Released",
    "RequestTurn",
    "Resume",
    "Role",
    "Selectors",
    "State",
    "Transfer",
    "TransferConfirmed",
    "TransferReceived",
    "TurnGiven",
    "TurnRequested",
]

#: id-ac-mts-transfer: the application context of P1 in 1988 normal mode.
ID_AC_MTS_TRANSFER: Final = "2.6.0.1.6"
_TAG_BIND_ARGUMENT: Final = 16
_TAG_BIND_RESULT: Final = 17
_TAG_BIND_ERROR: Final = 18
_TD_PROTOCOL_ERROR: Final = s.TD_RELEASE | s.TD_PROTOCOL_ERROR
_TD_USER_ABORT: Final = s.TD_RELEASE | s.TD_USER_ABORT
#: The turn of X.228 is the data, minor-sync and major/activity tokens together.
_TURN_TOKENS: Final = s.TOKEN_DATA | s.TOKEN_MINOR | s.TOKEN_MAJOR


class _PeerError(Exception):
    """A semantic fault found by the stack itself at `layer` (wrong APDU in place, …)."""

    def __init__(self, layer: Layer, message: str) -> None:
        super().__init__(message)
        self.layer = layer


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
        self.presentation = PresentationConnection() if mode is Mode.NORMAL_1988 else None
        self.receiver = RtseReceiver(max_apdu_size=self.settings.max_apdu_size)
        self.sender: RtseSender | None = None
        #: Negotiated RTSE parameters (set once open).
        self.checkpoint_size = 0
        self.window_size = 0
        self.dialogue_mode = r.DialogueMode.MONOLOGUE
        self.selectors = Selectors()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._bind_argument: bytes | None = None
        self._recover: Recovery | None = None
        #: This session connection's identifier: ours as initiator, the peer's CN's as
        #: responder (None when the CN named none).
        self.connection_id: r.SessionConnectionIdentifier | None = None
        self._rtorq: r.RTORQ | None = None
        self._requirements = s.RTSE_REQUIREMENTS
        self._application_context = ID_AC_MTS_TRANSFER
        self._where = Layer.TRANSPORT
        self._finished = False
        #: Context ids by abstract syntax, once the presentation connection is up.
        self._contexts: dict[str, int] = {}

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
        except t.RemoteProtocolError as exc:
            self._peer_error(exc)

    def next_event(self) -> Event | _Sentinel:
        """The next event from the peer, or NEED_DATA."""
        while not self._events:
            if self._finished or self.state is State.ERROR:
                return NEED_DATA
            try:
                if not self._step():
                    return NEED_DATA
            except (
                t.RemoteProtocolError,
                s.RemoteProtocolError,
                PresentationProtocolError,
                a.AcseProtocolError,
                r.RemoteProtocolError,
                _PeerError,
                ber.BERError,
                s.LocalProtocolError,
                PresentationLocalError,
                r.LocalProtocolError,
                ValueError,
            ) as exc:
                self._peer_error(exc)
        return self._events.popleft()

    def send(self, event: Event) -> bytes:
        """Act on a user event; the TCP bytes to write (with anything queued before)."""
        try:
            self._dispatch(event)
        except (
            t.LocalProtocolError,
            s.LocalProtocolError,
            PresentationLocalError,
            r.LocalProtocolError,
        ) as exc:
            raise LocalProtocolError(str(exc)) from exc
        return self.data_to_send()

    def _dispatch(self, event: Event) -> None:
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
        else:
            raise LocalProtocolError(f"{type(event).__name__} is not sent, only received")

    # ------------------------------------------------------------------ sending helpers

    def _expect(self, state: State, role: Role, what: str) -> None:
        if self.state is not state or self.role is not role:
            raise LocalProtocolError(
                f"cannot {what} in state {self.state.name} as {self.role.value}"
            )

    def _session_out(self, event: s.Event) -> None:
        for tsdu in self.session.send(event):
            self._out += self.transport.send_data(tsdu)

    def _pctx(self, syntax: str, default: int) -> int:
        if self.presentation is None:
            return default
        known = self._contexts.get(syntax)
        if known is not None:
            return known
        try:
            ident = self.presentation.context_id(syntax)
        except PresentationLocalError:
            return default
        if self.presentation.state is PresentationState.CONNECTED:
            self._contexts[syntax] = ident  # agreed for good
        return ident

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
        st = self.settings
        mode = r.DialogueMode.TWO_WAY_ALTERNATE if st.two_way_alternate else None
        recover: r.ConnectionData | None = None
        if self._recover is not None:
            recover = r.Recover(identifier=self._recover.identifier)
        if self.presentation is None:
            rtorq = r.RTORQ(
                checkpoint_size=st.checkpoint_size,
                window_size=st.window_size,
                dialogue_mode=mode,
                connection_data=recover or r.Open(value=self._bind_argument),
                application_protocol=st.application_protocol,
            )
            user_data = r.encode_x410_connect(rtorq)
        else:
            bind = r.Open(value=_explicit(_TAG_BIND_ARGUMENT, self._bind_argument))
            rtorq = r.RTORQ(
                checkpoint_size=st.checkpoint_size,
                window_size=st.window_size,
                dialogue_mode=mode,
                connection_data=recover or bind,
            )
            aarq = a.AARQ(
                application_context=ID_AC_MTS_TRANSFER,
                user_information=(a.External(context_id=3, value=r.encode_rtse_apdu(rtorq)),),
            )
            user_data = self.presentation.send_connect(
                [PDV(context_id=1, value=a.encode_apdu(aarq))],
                contexts=P1_CONTEXTS,
                called_selector=st.selectors.called_psel,
                calling_selector=st.selectors.calling_psel,
            )
        self._session_out(
            s.ConnectRequest(
                calling_ssel=st.selectors.calling_ssel,
                called_ssel=st.selectors.called_ssel,
                user_data=user_data,
                connection_id=_session_id(self.connection_id),
            )
        )

    def _send_accept(self, event: Accept | AcceptRecovery) -> None:
        self._expect(State.AWAIT_ACCEPT, Role.RESPONDER, "accept")
        rq = self._rtorq
        assert rq is not None
        recovering = isinstance(rq.connection_data, r.Recover)
        if recovering != isinstance(event, AcceptRecovery):
            raise LocalProtocolError(
                "a recovery is answered with AcceptRecovery, an open with Accept"
            )
        data: r.ConnectionData
        if isinstance(event, AcceptRecovery):
            data = rq.connection_data  # recover, naming the same session connection
            self.receiver.expect_resume(event.checkpoint)
        elif self.presentation is None:
            data = r.Open(value=event.bind_result)
        else:
            data = r.Open(value=_explicit(_TAG_BIND_RESULT, event.bind_result))
        mine = self.settings.checkpoint_size
        self.checkpoint_size = min(rq.checkpoint, mine) if rq.checkpoint and mine else 0
        self.window_size = min(rq.window, self.settings.window_size)
        self.dialogue_mode = rq.mode
        if rq.mode is r.DialogueMode.TWO_WAY_ALTERNATE:
            self.sender = RtseSender(
                checkpoint_size=self.checkpoint_size, window_size=self.window_size
            )
        rtoac = r.RTOAC(
            checkpoint_size=self.checkpoint_size,
            window_size=self.window_size,
            connection_data=data,
        )
        if self.presentation is None:
            user_data = r.encode_x410_accept(rtoac)
        else:
            aare = a.AARE(
                application_context=self._application_context,
                user_information=(
                    a.External(
                        context_id=self._pctx(ID_AS_MTA_RTSE, 3), value=r.encode_rtse_apdu(rtoac)
                    ),
                ),
            )
            user_data = self.presentation.send_accept(
                [PDV(context_id=self._pctx(ACSE, 1), value=a.encode_apdu(aare))],
                responding_selector=self.selectors.called_psel,
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
        if self.presentation is None:
            rtorj = r.RTORJ(refuse_reason=event.reason, user_data=event.bind_error)
            user_data = r.encode_x410_refuse(rtorj)
        else:
            error = event.bind_error
            rtorj = r.RTORJ(
                refuse_reason=event.reason,
                user_data=None if error is None else _explicit(_TAG_BIND_ERROR, error),
            )
            aare = a.AARE(
                application_context=self._application_context,
                result=a.AssociateResult.REJECTED_PERMANENT,
                user_information=(
                    a.External(
                        context_id=self._pctx(ID_AS_MTA_RTSE, 3), value=r.encode_rtse_apdu(rtorj)
                    ),
                ),
            )
            user_data = self.presentation.send_refuse(
                [PDV(context_id=self._pctx(ACSE, 1), value=a.encode_apdu(aare))]
            )
        self._session_out(s.Refuse(reason=2, user_data=user_data))
        self.state = State.CLOSED

    def _send_transfer(self, event: Transfer | Resume) -> None:
        if self.state is not State.OPEN or self.sender is None or not self.has_turn:
            raise LocalProtocolError(
                f"cannot transfer in state {self.state.name} as {self.role.value}"
                " without the turn (monologue: only the initiator sends)"
            )
        if self.presentation is None:
            if not event.apdu:
                raise LocalProtocolError("an empty APDU cannot be sent in X.410 mode")
            payload = event.apdu
        else:
            payload = _mtse_external(self._pctx(ID_AS_MTSE, 5), event.apdu)
        try:
            if isinstance(event, Resume):
                if self._recover is None:
                    raise LocalProtocolError("Resume needs an association opened to recover")
                old = event.recovery.checkpoint.activity_id
                events = self.sender.resume(
                    payload,
                    event.recovery.checkpoint,
                    activity_id=b"\x02" if old == DEFAULT_ACTIVITY_ID else DEFAULT_ACTIVITY_ID,
                    old_connection=_session_id(event.recovery.identifier),
                )
            else:
                events = self.sender.transfer(payload)
        except r.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc)) from None
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
            if isinstance(ev, s.Data) and self.presentation is not None:
                rttr = r.encode_rttr(ev.payload)
                ctx = self._pctx(ID_AS_MTA_RTSE, 3)
                self._session_out(s.Data(payload=self.presentation.wrap_one(ctx, rttr)))
            else:
                self._session_out(ev)

    def _send_confirm(self) -> None:
        if self.state is not State.OPEN or self.receiver.state is not TransferState.AWAIT_CONFIRM:
            raise LocalProtocolError("no received transfer awaits confirmation")
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
            raise LocalProtocolError("turns exist only in an open two-way-alternate association")
        if isinstance(event, GiveTurn):
            busy = self.sender is not None and self.sender.state is not TransferState.IDLE
            if not self.has_turn or busy:
                raise LocalProtocolError("cannot give a turn we do not hold, or mid-transfer")
            self._session_out(s.GiveTokens(tokens=self.session.tokens & _TURN_TOKENS))
            return
        if self.has_turn:
            raise LocalProtocolError("we hold the turn already")
        rttp = r.encode_rtse_apdu(r.RTTP(priority=event.priority))
        if self.presentation is not None:
            rttp = self.presentation.wrap([(self._pctx(ID_AS_MTA_RTSE, 3), rttp)])
        self._session_out(s.PleaseTokens(tokens=_TURN_TOKENS, user_data=rttp))

    def _send_release(self) -> None:
        self._expect(State.OPEN, Role.INITIATOR, "release")
        if self.sender is not None and self.sender.state is not TransferState.IDLE:
            raise LocalProtocolError("cannot release during a transfer")
        user_data = b""
        if self.presentation is not None:
            rlrq = a.encode_apdu(a.RLRQ(reason=0))
            user_data = self.presentation.wrap([(self._pctx(ACSE, 1), rlrq)])
        self._session_out(s.Finish(user_data=user_data))
        self.state = State.RELEASING

    def _send_user_abort(self, event: Abort) -> None:
        if self.state in (State.CLOSED, State.ERROR) or (
            self.state is State.IDLE and self.role is Role.INITIATOR
        ):
            raise LocalProtocolError(f"cannot abort in state {self.state.name}")
        self._abort_out(Layer.RTSE, r.RTAB(abort_reason=event.reason), _TD_USER_ABORT)
        self.state = State.CLOSED

    # ------------------------------------------------------------------ aborts

    def _abort_user_data(self, layer: Layer, rtab: r.RTAB | None, acse: bytes | None) -> bytes:
        """The AB user data for an abort at `layer` (RTSE: RTAB; ACSE: ABRT)."""
        if self.presentation is None:
            return b"" if rtab is None else r.encode_rtse_apdu(rtab)
        if layer is Layer.RTSE and rtab is not None:
            ext = a.External(
                context_id=self._pctx(ID_AS_MTA_RTSE, 3), value=r.encode_rtse_apdu(rtab)
            )
            acse = a.encode_apdu(a.ABRT(source=0, user_information=(ext,)))
        if acse is None:
            return b""
        pdv = PDV(context_id=self._pctx(ACSE, 1), value=acse)
        return encode_abort(UserAbortPPDU(user_data=(pdv,)))

    def _abort_out(
        self,
        layer: Layer,
        rtab: r.RTAB | None,
        reason: int,
        *,
        acse: bytes | None = None,
        user_data: bytes | None = None,
    ) -> None:
        """Queue the abort: a session AB if the session is up, else a transport DR."""
        if self.transport.state is not t.State.OPEN:
            if self.transport.state in (t.State.CR_RECEIVED, t.State.ERROR):
                self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_PROTOCOL_ERROR))
            return
        if self.session.state in (s.State.IDLE, s.State.CLOSED, s.State.ERROR):
            self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_NORMAL))
            return
        if user_data is None:
            user_data = self._abort_user_data(layer, rtab, acse)
        self._session_out(s.Abort(reason=reason, user_data=user_data))

    def _peer_error(self, exc: Exception) -> None:
        """The peer broke a protocol: queue that layer's abort, report it, go to ERROR."""
        layer = self._where
        try:
            if isinstance(exc, t.RemoteProtocolError):
                layer = Layer.TRANSPORT
                self._out += self.transport.send(exc.hint)
            elif isinstance(exc, s.RemoteProtocolError):
                layer = Layer.SESSION
                if self.transport.state is t.State.OPEN:
                    self._out += self.transport.send(t.Data(payload=exc.abort))
            elif isinstance(exc, PresentationProtocolError):
                layer = Layer.PRESENTATION
                self._abort_out(layer, None, _TD_PROTOCOL_ERROR, user_data=exc.abort)
            elif isinstance(exc, a.AcseProtocolError):
                layer = Layer.ACSE
                self._abort_out(layer, None, _TD_PROTOCOL_ERROR, acse=exc.abort)
            elif isinstance(exc, r.RemoteProtocolError):
                layer = Layer.RTSE
                self._abort_out(layer, exc.abort, _TD_PROTOCOL_ERROR)
            elif isinstance(exc, _PeerError):
                layer = exc.layer
                rtab = r.RTAB(abort_reason=r.AbortReason.PROTOCOL_ERROR)
                acse = a.encode_apdu(a.ABRT(source=1)) if layer is Layer.ACSE else None
                arp = None  # a presentation fault is told in an ARP, as the decoder's are
                if layer is Layer.PRESENTATION and self.presentation is not None:
                    reason = PresentationAbortReason.UNEXPECTED_PARAMETER
                    arp = encode_abort(ProviderAbortPPDU(reason=reason))
                self._abort_out(layer, rtab, _TD_PROTOCOL_ERROR, acse=acse, user_data=arp)
            else:
                rtab = r.RTAB(abort_reason=r.AbortReason.PROTOCOL_ERROR)
                self._abort_out(layer, rtab, _TD_PROTOCOL_ERROR)
        except (
            t.TransportError,
            s.LocalProtocolError,
            PresentationLocalError,
            r.RtseError,
            ValueError,
        ):
            pass  # nothing more can be said to the peer: closing TCP is the abort
        self.state = State.ERROR
        self._events.append(Aborted(layer=layer, reason=str(exc), by_peer=False))

    # ------------------------------------------------------------------ receiving

    def _step(self) -> bool:
        self._where = Layer.SESSION
        ev = self.session.next_event()
        if not isinstance(ev, s._Sentinel):
            self._on_session(ev)
            return True
        self._where = Layer.TRANSPORT
        tev = self.transport.next_event()
        if isinstance(tev, te._Sentinel):
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
            raise _PeerError(Layer.RTSE, f"{type(ev).__name__}: no turns in monologue")
        if isinstance(ev, s.GiveTokens):
            if self.session.tokens & _TURN_TOKENS == _TURN_TOKENS:
                self._events.append(TurnGiven())
            return
        priority = 0
        if ev.user_data:
            data = ev.user_data
            if self.presentation is not None:
                data = self._pdv(data, ID_AS_MTA_RTSE, "P-TOKEN-PLEASE")
            self._where = Layer.RTSE
            rttp = r.decode_rtse_apdu(data)
            if not isinstance(rttp, r.RTTP):
                raise _PeerError(Layer.RTSE, f"{type(rttp).__name__} in a token please")
            priority = rttp.priority
        self._events.append(TurnRequested(priority=priority))

    def _pdv(self, data: bytes, syntax: str, what: str) -> bytes:
        """The one PDV of P-DATA (or FN/DN user data) in the context of `syntax`."""
        assert self.presentation is not None
        self._where = Layer.PRESENTATION
        pdvs = self.presentation.unwrap(data)
        want = self._pctx(syntax, -1)
        if len(pdvs) != 1 or pdvs[0].context_id != want:
            raise _PeerError(Layer.PRESENTATION, f"{what}: expected one PDV in context {want}")
        return pdvs[0].value

    def _rtse_external(self, items: tuple[a.External, ...], what: str) -> r.Apdu:
        self._where = Layer.RTSE
        ctx = self._pctx(ID_AS_MTA_RTSE, 3)
        for ext in items:
            if ext.context_id == ctx and not ext.octet_aligned:
                return r.decode_rtse_apdu(ext.value)
        raise _PeerError(Layer.ACSE, f"{what} carries no RTSE APDU in context {ctx}")

    def _on_connect(self, ev: s.ConnectRequest) -> None:
        sel = self.selectors
        needed = s.HALF_DUPLEX | s.MINOR_SYNC | s.ACTIVITY_MANAGEMENT
        if ev.requirements & needed != needed:
            raise _PeerError(
                Layer.SESSION, f"CN requirements {ev.requirements:#06x} lack what RTSE needs"
            )
        self._requirements = ev.requirements & s.RTSE_REQUIREMENTS
        if self.session.tokens & _TURN_TOKENS:
            raise _PeerError(Layer.SESSION, "CN token setting gives the turn to the responder")
        self.connection_id = _rtse_id(ev.connection_id)
        bind = b""
        if self.presentation is None:
            self._where = Layer.RTSE
            rq = r.decode_x410_connect(ev.user_data)
            if isinstance(rq.connection_data, r.Open):
                bind = rq.connection_data.value
            psel: tuple[bytes | None, bytes | None] = (None, None)
        else:
            self._where = Layer.PRESENTATION
            cp = self.presentation.receive_connect(ev.user_data)
            for syntax in (ACSE, ID_AS_MTA_RTSE, ID_AS_MTSE):
                self.presentation.context_id(syntax)  # each must be agreed
            acse_ctx = self._pctx(ACSE, 1)
            pdvs = [p for p in cp.user_data if p.context_id == acse_ctx]
            if len(pdvs) != 1:
                raise _PeerError(Layer.PRESENTATION, "CP must carry one PDV in the ACSE context")
            self._where = Layer.ACSE
            aarq = a.decode_apdu(pdvs[0].value)
            if not isinstance(aarq, a.AARQ):
                raise _PeerError(Layer.ACSE, f"{type(aarq).__name__} in the CP, not an AARQ")
            if aarq.application_context != ID_AC_MTS_TRANSFER:
                raise _PeerError(
                    Layer.ACSE, f"application context {aarq.application_context} is not P1"
                )
            self._application_context = aarq.application_context
            rq_apdu = self._rtse_external(aarq.user_information, "AARQ")
            if not isinstance(rq_apdu, r.RTORQ):
                raise _PeerError(Layer.RTSE, "the AARQ must carry an RTORQ")
            rq = rq_apdu
            if isinstance(rq.connection_data, r.Open):
                bind = _unexplicit(rq.connection_data.value, _TAG_BIND_ARGUMENT)
            psel = (cp.calling_selector, cp.called_selector)
        self._rtorq = rq
        self.selectors = Selectors(
            calling_tsel=sel.calling_tsel,
            called_tsel=sel.called_tsel,
            calling_ssel=ev.calling_ssel,
            called_ssel=ev.called_ssel,
            calling_psel=psel[0],
            called_psel=psel[1],
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
                bind_argument=bind,
                checkpoint_size=rq.checkpoint,
                window_size=rq.window,
                dialogue_mode=rq.mode,
                application_protocol=rq.application_protocol,
                selectors=self.selectors,
            )
        )

    def _on_accept(self, ev: s.ConnectAccept) -> None:
        if self.presentation is None:
            self._where = Layer.RTSE
            ac = r.decode_x410_accept(ev.user_data)
            result = ac.connection_data.value if isinstance(ac.connection_data, r.Open) else b""
        else:
            self._where = Layer.PRESENTATION
            cpa = self.presentation.receive_accept(ev.user_data)
            for syntax in (ACSE, ID_AS_MTA_RTSE, ID_AS_MTSE):
                self.presentation.context_id(syntax)
            acse_ctx = self._pctx(ACSE, 1)
            pdvs = [p for p in cpa.user_data if p.context_id == acse_ctx]
            if len(pdvs) != 1:
                raise _PeerError(Layer.PRESENTATION, "CPA must carry one PDV in the ACSE context")
            self._where = Layer.ACSE
            aare = a.decode_apdu(pdvs[0].value)
            if not isinstance(aare, a.AARE) or aare.result is not a.AssociateResult.ACCEPTED:
                raise _PeerError(Layer.ACSE, "the CPA must carry an accepting AARE")
            ac_apdu = self._rtse_external(aare.user_information, "AARE")
            if not isinstance(ac_apdu, r.RTOAC):
                raise _PeerError(Layer.RTSE, "the AARE must carry an RTOAC")
            ac = ac_apdu
            result = b""
            if isinstance(ac.connection_data, r.Open):
                result = _unexplicit(ac.connection_data.value, _TAG_BIND_RESULT)
        recovered = isinstance(ac.connection_data, r.Recover)
        if recovered != (self._recover is not None):
            raise _PeerError(
                Layer.RTSE,
                "RTOAC recover answers an open" if recovered else "RTOAC without recover",
            )
        if self.session.tokens & _TURN_TOKENS != _TURN_TOKENS:
            raise _PeerError(
                Layer.SESSION, "AC token setting leaves the initiator without the turn"
            )
        proposed = self.settings.checkpoint_size
        if (ac.checkpoint and not proposed) or ac.checkpoint > proposed:
            raise _PeerError(Layer.RTSE, f"RTOAC checkpoint size {ac.checkpoint} > {proposed}")
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
        rtorj: r.RTORJ | None = None
        try:
            if self.presentation is None:
                rtorj = r.decode_x410_refuse(ev.user_data)
            elif ev.user_data:
                cpr = decode_refuse(ev.user_data)
                for pdv in cpr.user_data:
                    if pdv.context_id == 1:
                        aare = a.decode_apdu(pdv.value)
                        if isinstance(aare, a.AARE):
                            rj = self._rtse_external(aare.user_information, "AARE")
                            rtorj = rj if isinstance(rj, r.RTORJ) else None
        except (
            r.RemoteProtocolError,
            a.AcseProtocolError,
            PresentationProtocolError,
            _PeerError,
        ):
            rtorj = None
        if rtorj is None:
            refused = Refused(bind_error=None, reason=None, layer=Layer.SESSION)
        else:
            error = rtorj.user_data
            if error is not None and self.presentation is not None:
                with contextlib.suppress(_PeerError):  # else keep it as it came
                    error = _unexplicit(error, _TAG_BIND_ERROR)
            refused = Refused(bind_error=error, reason=rtorj.refuse_reason, layer=Layer.RTSE)
        self._events.append(refused)
        if self.transport.state is t.State.OPEN:
            self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_NORMAL))

    def _on_transfer_data(self, ev: s.Event) -> None:
        if self.state is not State.OPEN:
            raise _PeerError(Layer.RTSE, f"{type(ev).__name__} outside the data phase")
        if isinstance(ev, s.Data) and self.presentation is not None:
            value = self._pdv(ev.payload, ID_AS_MTA_RTSE, "P-DATA")
            self._where = Layer.RTSE
            segment = r.decode_rttr(value)  # as RTTRs come, else the full decoder
            if segment is None:
                apdu = r.decode_rtse_apdu(value)
                if not isinstance(apdu, r.RTTR):
                    raise _PeerError(Layer.RTSE, f"{type(apdu).__name__} in P-DATA, not an RTTR")
                segment = apdu.data
            ev = s.Data(payload=segment)
        self._where = Layer.RTSE
        self._rtse_out(self.receiver.receive(ev))
        payload = self.receiver.apdu
        if isinstance(ev, s.ActivityEnd) and payload is not None:
            if self.presentation is not None:
                payload = self._unwrap_mtse(payload)
            self._events.append(TransferReceived(apdu=payload))

    def _unwrap_mtse(self, data: bytes) -> bytes:
        """The MTS-APDU inside `EXTERNAL { ctx id-as-mtse, [0] { apdu } }`.

        In the form senders write, the wrapper is read in place and the APDU's own
        elements are left to the P1 decoder above (one scan, not two): a malformed
        APDU is then the P1 layer's error. Any other form is checked element by element.
        """
        found = _mtse_content(data)
        if found is not None:
            want = self._pctx(ID_AS_MTSE, 5)
            if found[0] != want:
                raise _PeerError(Layer.RTSE, f"APDU in context {found[0]}, not id-as-mtse ({want})")
            return found[1]
        limits = ber.Limits(max_length=len(data), max_total=len(data) + 1)
        ext = ber.decode(data, limits=limits, name="mts-external").expect(ber.EXTERNAL)
        ident = ext.child(ber.INTEGER, "indirect-reference").as_int()
        want = self._pctx(ID_AS_MTSE, 5)
        if ident != want:
            raise _PeerError(Layer.RTSE, f"APDU in context {ident}, not id-as-mtse ({want})")
        value = ext.child(ber.context(0, True), "single-ASN1-type")
        if len(ext) != 2:
            raise ext.error("EXTERNAL must hold a context id and a single-ASN1-type")
        return b"".join(bytes(c.raw) for c in value.children())

    def _on_transfer_ack(self, ev: s.MinorSyncAck | s.ActivityEndAck) -> None:
        if self.state is not State.OPEN or self.sender is None:
            raise _PeerError(Layer.RTSE, f"{type(ev).__name__} but nothing was sent")
        self._where = Layer.RTSE
        self._rtse_out(self.sender.receive(ev))
        if isinstance(ev, s.ActivityEndAck):
            self._events.append(TransferConfirmed())

    def _on_finish(self, ev: s.Finish) -> None:
        if self.state is not State.OPEN or self.role is not Role.RESPONDER:
            raise _PeerError(Layer.SESSION, "FN from the responder (monologue)")
        answer = b""
        if self.presentation is not None:
            value = self._pdv(ev.user_data, ACSE, "FN")
            self._where = Layer.ACSE
            if not isinstance(a.decode_apdu(value), a.RLRQ):
                raise _PeerError(Layer.ACSE, "FN must carry an RLRQ")
            rlre = a.encode_apdu(a.RLRE(reason=0))
            answer = self.presentation.wrap([(self._pctx(ACSE, 1), rlre)])
        self._session_out(s.Disconnect(user_data=answer))
        self.state = State.CLOSED
        self._events.append(Released())

    def _on_disconnect(self, ev: s.Disconnect) -> None:
        if self.presentation is not None:
            value = self._pdv(ev.user_data, ACSE, "DN")
            self._where = Layer.ACSE
            if not isinstance(a.decode_apdu(value), a.RLRE):
                raise _PeerError(Layer.ACSE, "DN must carry an RLRE")
        self.state = State.CLOSED
        self._events.append(Released())
        self._out += self.transport.send(t.DisconnectRequest(reason=te.DR_NORMAL))

    def _on_abort(self, ev: s.Abort) -> None:
        self.state = State.CLOSED
        layer, reason = Layer.SESSION, f"AB transport-disconnect {ev.reason:#04x}"
        try:
            if ev.user_data and self.presentation is None:
                rtab = r.decode_rtse_apdu(ev.user_data)
                if isinstance(rtab, r.RTAB):
                    layer, reason = Layer.RTSE, f"RTAB {_name(rtab.abort_reason)}"
            elif ev.user_data:
                ppdu = decode_abort(ev.user_data)
                if isinstance(ppdu, ProviderAbortPPDU):
                    layer, reason = Layer.PRESENTATION, f"ARP {_name(ppdu.reason)}"
                else:
                    layer, reason = Layer.PRESENTATION, "ARU"
                    for pdv in ppdu.user_data:
                        abrt = a.decode_apdu(pdv.value)
                        if isinstance(abrt, a.ABRT):
                            layer, reason = Layer.ACSE, f"ABRT source {abrt.source}"
                            rtab = self._rtse_external(abrt.user_information, "ABRT")
                            if isinstance(rtab, r.RTAB):
                                layer, reason = Layer.RTSE, f"RTAB {_name(rtab.abort_reason)}"
        except (r.RemoteProtocolError, a.AcseProtocolError, PresentationProtocolError, _PeerError):
            pass  # the abort stands; its user data only informs
        if self.session.state is s.State.AWAIT_SEND_AA:
            self._session_out(s.AbortAccept())
        self._events.append(Aborted(layer=layer, reason=reason))


def _mtse_external(context_id: int, apdu: bytes) -> bytes:
    """`EXTERNAL { INTEGER context_id, [0] { apdu } }`, joined once."""
    encoded = fast.encode_ident_single((fast.TAG_EXTERNAL,), context_id, apdu)
    if encoded is None:
        return ber.constructed(
            ber.EXTERNAL, ber.encode_int(context_id), ber.constructed(ber.context(0), apdu)
        )
    return encoded


def _mtse_content(data: bytes) -> tuple[int, bytes] | None:
    """(context id, contents of [0]) of `EXTERNAL { INTEGER 0..127, [0] { … } }` with
    shortest definite lengths; None for any other form, which `_unwrap_mtse` reads with
    the decoder."""
    found = fast.read_ident_single(data, (fast.TAG_EXTERNAL,))
    if found is None:
        return None
    return found[0], data[found[1] :]


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


def _name(value: object) -> str:
    return "absent" if value is None else getattr(value, "name", str(value))


def _explicit(number: int, value: bytes) -> bytes:
    return ber.constructed(ber.context(number), value)


def _unexplicit(value: bytes, number: int) -> bytes:
    """The one element inside `[number] EXPLICIT` (the bind argument/result/error)."""
    try:
        element = ber.decode(value, limits=ber.Limits(max_total=len(value) + 1))
    except ber.BERError as exc:
        raise _PeerError(Layer.RTSE, f"bind value: {exc}") from None
    if element.tag != ber.context(number, True) or len(element) != 1:
        raise _PeerError(Layer.RTSE, f"bind value is not [{number}] EXPLICIT")
    return bytes(element.child(0).raw)
