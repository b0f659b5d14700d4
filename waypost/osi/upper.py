"""What the association needs from the layers above the session, in either mode.

`Association` (waypost.osi.stack) runs transport, session and the RTSE transfer
machines the same way in both modes; what differs is how the RTSE APDUs, the bind
values and the MTS-APDUs ride on the session: in 1988 normal mode inside ACSE and
presentation (`waypost.osi.upper_normal`), in X.410-1984 mode straight on the
session (`waypost.osi.upper_x410`). Each is built and tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from waypost.osi import rtse as r
from waypost.osi.errors import Layer, RemoteProtocolError
from waypost.osi.presentation import PresentationConnection
from waypost.osi.stack_events import AssociationSettings

__all__ = [
    "Connection",
    "UpperLayers",
    "connect_rtorq",
    "turn_priority",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """What a CN carried above the session: the RTORQ, the bind argument (empty when
    recovering) and, in 1988 mode, the presentation selectors."""

    rtorq: r.RTORQ
    bind_argument: bytes = b""
    calling_psel: bytes | None = None
    called_psel: bytes | None = None


class UpperLayers(Protocol):
    """The encodings of one mode: session user data out, and the same read back in.

    Readers raise `RemoteProtocolError` naming the layer at fault; writers raise
    `LocalProtocolError` on misuse.
    """

    @property
    def presentation(self) -> PresentationConnection | None:
        """The presentation connection (1988 mode), or None."""
        ...

    def connect(self, settings: AssociationSettings, data: r.ConnectionData) -> bytes:
        """CN user data proposing `settings` with `data` (Open with the bare bind
        argument, or Recover)."""
        ...

    def read_connect(self, user_data: bytes) -> Connection: ...

    def accept(
        self,
        *,
        checkpoint_size: int,
        window_size: int,
        data: r.ConnectionData,
        responding_psel: bytes | None,
    ) -> bytes:
        """AC user data: an RTOAC with `data` (Open with the bare bind result, or Recover)."""
        ...

    def read_accept(self, user_data: bytes) -> tuple[r.RTOAC, bytes]:
        """The RTOAC and the bare bind result (empty when recovered)."""
        ...

    def refuse(self, reason: r.RefuseReason, bind_error: bytes | None) -> bytes: ...

    def read_refuse(self, user_data: bytes) -> r.RTORJ | None:
        """The RTORJ with its bare bind error, or None when the RF says nothing readable."""
        ...

    def transfer_payload(self, apdu: bytes) -> bytes:
        """What RTSE segments for one MTS-APDU."""
        ...

    def read_transfer(self, payload: bytes) -> bytes:
        """The MTS-APDU in a reassembled transfer."""
        ...

    def data(self, segment: bytes) -> bytes:
        """Session DT user information for one RTSE segment (an RTTR)."""
        ...

    def read_data(self, payload: bytes) -> bytes: ...

    def turn_please(self, priority: int) -> bytes:
        """Please Tokens user data: the RTTP."""
        ...

    def read_turn_please(self, user_data: bytes) -> int: ...

    def release(self) -> bytes:
        """FN user data."""
        ...

    def read_release(self, user_data: bytes) -> bytes:
        """Check the FN user data; the DN user data that answers it."""
        ...

    def read_release_answer(self, user_data: bytes) -> None: ...

    def user_abort(self, reason: r.AbortReason) -> bytes:
        """AB user data for our user's abort (an RTAB)."""
        ...

    def protocol_error_abort(self, error: RemoteProtocolError) -> bytes:
        """AB user data answering a peer's protocol error found above the session."""
        ...

    def read_abort(self, user_data: bytes) -> tuple[Layer, str] | None:
        """Which layer aborted and why, from AB user data; None when it says nothing."""
        ...


def connect_rtorq(
    settings: AssociationSettings, data: r.ConnectionData, *, application_protocol: int | None
) -> r.RTORQ:
    """The RTORQ proposing the local settings (X.228 8.1.1)."""
    mode = r.DialogueMode.TWO_WAY_ALTERNATE if settings.two_way_alternate else None
    return r.RTORQ(
        checkpoint_size=settings.checkpoint_size,
        window_size=settings.window_size,
        dialogue_mode=mode,
        connection_data=data,
        application_protocol=application_protocol,
    )


def turn_priority(rtse_apdu: bytes) -> int:
    """The priority of the RTTP carried by a Please Tokens."""
    rttp = r.decode_rtse_apdu(rtse_apdu)
    if not isinstance(rttp, r.RTTP):
        raise RemoteProtocolError(Layer.RTSE, f"{type(rttp).__name__} in a token please")
    return rttp.priority
