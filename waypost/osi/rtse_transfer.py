"""RTSE transfer procedure (X.228 RT-TRANSFER), sans-I/O, over the session layer's events.

`RtseSender` turns one APDU into ActivityStart, Data segments of checkpointSize
KiB with a MinorSync after each checkpoint (waiting for MinorSyncAcks when the
window is full) and ActivityEnd; the transfer is confirmed by ActivityEndAck.
`RtseReceiver` reassembles the segments and answers ActivityEnd with
ActivityEndAck only when the application calls `confirm()` (the APDU is durable).
In normal mode the caller wraps each segment in an RTTR and P-DATA; in X.410
mode the segments go in DT as they are.
"""

from __future__ import annotations

import enum
from typing import Final

from waypost.osi import session
from waypost.osi.rtse import (
    DEFAULT_WINDOW_SIZE,
    MAX_APDU_SIZE,
    MAX_CHECKPOINT_SIZE,
    MAX_WINDOW_SIZE,
    AbortReason,
    LocalProtocolError,
    RemoteProtocolError,
)

__all__ = ["DEFAULT_ACTIVITY_ID", "RtseReceiver", "RtseSender", "TransferState"]

DEFAULT_ACTIVITY_ID: Final = b"\x01"


class TransferState(enum.Enum):
    IDLE = "IDLE"
    TRANSFERRING = "TRANSFERRING"
    AWAIT_CONFIRM = "AWAIT_CONFIRM"  # sender: sent AE; receiver: got AE, the user confirms
    ERROR = "ERROR"


class RtseSender:
    """Sends APDUs one activity each, keeping at most `window_size` minor syncs unconfirmed."""

    def __init__(self, *, checkpoint_size: int = 0, window_size: int = DEFAULT_WINDOW_SIZE) -> None:
        if not 0 <= checkpoint_size <= MAX_CHECKPOINT_SIZE:
            raise LocalProtocolError(f"checkpoint size {checkpoint_size} out of range")
        if not 1 <= window_size <= MAX_WINDOW_SIZE:
            raise LocalProtocolError(f"window size {window_size} out of range")
        self.checkpoint_size = checkpoint_size
        self.window_size = window_size
        self.state = TransferState.IDLE
        #: Transfers confirmed by the peer (ActivityEndAck received).
        self.confirmed = 0
        self._segments: list[bytes] = []
        self._next = 0
        self._syncs = 0  # minor syncs sent in this activity (serials 1..n)
        self._acked = 0  # highest minor sync serial acknowledged

    @property
    def outstanding(self) -> int:
        """Minor sync points sent and not yet acknowledged."""
        return self._syncs - self._acked

    def transfer(
        self, apdu: bytes, activity_id: bytes = DEFAULT_ACTIVITY_ID
    ) -> list[session.Event]:
        """Start sending `apdu`: the session events to send now."""
        if self.state is not TransferState.IDLE:
            raise LocalProtocolError(f"cannot start a transfer in state {self.state.name}")
        if not apdu:
            raise LocalProtocolError("cannot transfer an empty APDU")
        size = self.checkpoint_size * 1024 or len(apdu)
        self._segments = [apdu[i : i + size] for i in range(0, len(apdu), size)]
        self._next = self._syncs = self._acked = 0
        self.state = TransferState.TRANSFERRING
        return [session.ActivityStart(activity_id=activity_id), *self._pump()]

    def _pump(self) -> list[session.Event]:
        out: list[session.Event] = []
        while self._next < len(self._segments) and self.outstanding < self.window_size:
            out.append(session.Data(payload=self._segments[self._next]))
            self._next += 1
            if self._next < len(self._segments):
                self._syncs += 1
                out.append(session.MinorSync())
            else:
                out.append(session.ActivityEnd())
                self.state = TransferState.AWAIT_CONFIRM
        return out

    def _fail(self, message: str) -> RemoteProtocolError:
        self.state = TransferState.ERROR
        return RemoteProtocolError(message, reason=AbortReason.PROTOCOL_ERROR)

    def receive(self, event: session.Event) -> list[session.Event]:
        """A session event from the peer (MinorSyncAck, ActivityEndAck): what to send next."""
        if isinstance(event, session.MinorSyncAck) and self.state in (
            TransferState.TRANSFERRING,
            TransferState.AWAIT_CONFIRM,
        ):
            if not self._acked < event.serial <= self._syncs:
                raise self._fail(f"MinorSyncAck {event.serial} confirms no outstanding checkpoint")
            self._acked = event.serial
            return self._pump()
        if isinstance(event, session.ActivityEndAck) and self.state is TransferState.AWAIT_CONFIRM:
            self.state = TransferState.IDLE
            self.confirmed += 1
            self._segments = []
            return []
        raise self._fail(f"unexpected {type(event).__name__} in state {self.state.name}")


class RtseReceiver:
    """Reassembles one APDU per activity; confirms it only when the user says it is durable."""

    def __init__(self, *, max_apdu_size: int = MAX_APDU_SIZE) -> None:
        self.max_apdu_size = max_apdu_size
        self.state = TransferState.IDLE
        self.activity_id: bytes | None = None
        self._parts: list[bytes] = []
        self._size = 0

    def _fail(self, message: str, reason: AbortReason = AbortReason.PROTOCOL_ERROR) -> Exception:
        self.state = TransferState.ERROR
        return RemoteProtocolError(message, reason=reason)

    def receive(self, event: session.Event) -> list[session.Event]:
        """A session event from the peer: the session events to answer with now."""
        st = self.state
        if isinstance(event, session.ActivityStart) and st is TransferState.IDLE:
            self.state = TransferState.TRANSFERRING
            self.activity_id = event.activity_id
            self._parts, self._size = [], 0
            return []
        if isinstance(event, session.Data) and st is TransferState.TRANSFERRING:
            self._size += len(event.payload)
            if self._size > self.max_apdu_size:
                raise self._fail(
                    f"APDU exceeds {self.max_apdu_size} octets", AbortReason.PERMANENT_PROBLEM
                )
            self._parts.append(event.payload)
            return []
        if isinstance(event, session.MinorSync) and st is TransferState.TRANSFERRING:
            if event.no_confirm:
                return []
            if event.serial is None:
                raise self._fail("MinorSync without a serial number")
            return [session.MinorSyncAck(serial=event.serial)]
        if isinstance(event, session.ActivityEnd) and st is TransferState.TRANSFERRING:
            if not self._size:
                raise self._fail("activity ended without data")
            self.state = TransferState.AWAIT_CONFIRM
            return []
        raise self._fail(f"unexpected {type(event).__name__} in state {st.name}")

    @property
    def apdu(self) -> bytes | None:
        """The reassembled APDU once the activity has ended, until `confirm()`."""
        if self.state is not TransferState.AWAIT_CONFIRM:
            return None
        if len(self._parts) != 1:
            self._parts = [b"".join(self._parts)]
        return self._parts[0]

    def confirm(self) -> list[session.Event]:
        """The APDU is durable: the ActivityEndAck that confirms the transfer to the peer."""
        if self.state is not TransferState.AWAIT_CONFIRM:
            raise LocalProtocolError(f"nothing to confirm in state {self.state.name}")
        self.state = TransferState.IDLE
        self._parts, self._size = [], 0
        return [session.ActivityEndAck()]
