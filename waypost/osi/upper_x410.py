"""X.410-1984 mode above the session: RTSE straight on the session (X.228 annex C, X.410).

The RTORQ/RTOAC/RTORJ are the CN/AC/RF user data themselves (PConnect, PAccept,
PRefuse), RTTRs the DT user information, the RTAB the AB user data; the bind
values and the MTS-APDU travel bare. There is no presentation or ACSE.
"""

from __future__ import annotations

from waypost.osi import rtse as r
from waypost.osi.errors import Layer, LocalProtocolError, RemoteProtocolError
from waypost.osi.presentation import PresentationConnection
from waypost.osi.stack_events import AssociationSettings
from waypost.osi.upper import Connection, connect_rtorq, turn_priority

__all__ = ["X410Mode"]


class X410Mode:
    """The RTSE encodings of one association in X.410-1984 mode (it keeps no state)."""

    @property
    def presentation(self) -> PresentationConnection | None:
        return None

    # -- association establishment -------------------------------------------------

    def connect(self, settings: AssociationSettings, data: r.ConnectionData) -> bytes:
        rtorq = connect_rtorq(settings, data, application_protocol=settings.application_protocol)
        return r.encode_x410_connect(rtorq)

    def read_connect(self, user_data: bytes) -> Connection:
        rtorq = r.decode_x410_connect(user_data)
        data = rtorq.connection_data
        return Connection(
            rtorq=rtorq, bind_argument=data.value if isinstance(data, r.Open) else b""
        )

    def accept(
        self,
        *,
        checkpoint_size: int,
        window_size: int,
        data: r.ConnectionData,
        responding_psel: bytes | None,
    ) -> bytes:
        rtoac = r.RTOAC(
            checkpoint_size=checkpoint_size, window_size=window_size, connection_data=data
        )
        return r.encode_x410_accept(rtoac)

    def read_accept(self, user_data: bytes) -> tuple[r.RTOAC, bytes]:
        rtoac = r.decode_x410_accept(user_data)
        data = rtoac.connection_data
        return rtoac, data.value if isinstance(data, r.Open) else b""

    def refuse(self, reason: r.RefuseReason, bind_error: bytes | None) -> bytes:
        return r.encode_x410_refuse(r.RTORJ(refuse_reason=reason, user_data=bind_error))

    def read_refuse(self, user_data: bytes) -> r.RTORJ | None:
        try:
            return r.decode_x410_refuse(user_data)
        except RemoteProtocolError:
            return None  # the refusal stands; its user data only informs

    # -- data phase ---------------------------------------------------------------

    def transfer_payload(self, apdu: bytes) -> bytes:
        if not apdu:
            raise LocalProtocolError(Layer.RTSE, "an empty APDU cannot be sent in X.410 mode")
        return apdu

    def read_transfer(self, payload: bytes) -> bytes:
        return payload

    def data(self, segment: bytes) -> bytes:
        return segment

    def read_data(self, payload: bytes) -> bytes:
        return payload

    def turn_please(self, priority: int) -> bytes:
        return r.encode_rtse_apdu(r.RTTP(priority=priority))

    def read_turn_please(self, user_data: bytes) -> int:
        return turn_priority(user_data)

    # -- release and abort -----------------------------------------------------------

    def release(self) -> bytes:
        return b""

    def read_release(self, user_data: bytes) -> bytes:
        return b""

    def read_release_answer(self, user_data: bytes) -> None:
        return None

    def user_abort(self, reason: r.AbortReason) -> bytes:
        return r.encode_rtse_apdu(r.RTAB(abort_reason=reason))

    def protocol_error_abort(self, error: RemoteProtocolError) -> bytes:
        """Every fault above the session is told in an RTAB: RTSE is all there is."""
        rtab = error.abort if isinstance(error.abort, r.RTAB) else None
        return r.encode_rtse_apdu(rtab or r.RTAB(abort_reason=r.AbortReason.PROTOCOL_ERROR))

    def read_abort(self, user_data: bytes) -> tuple[Layer, str] | None:
        if not user_data:
            return None
        try:
            rtab = r.decode_rtse_apdu(user_data)
        except RemoteProtocolError:
            return None  # the abort stands; its user data only informs
        if isinstance(rtab, r.RTAB):
            reason = rtab.abort_reason
            return Layer.RTSE, f"RTAB {'absent' if reason is None else reason.name}"
        return None
