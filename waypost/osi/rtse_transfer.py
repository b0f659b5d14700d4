"""RTSE transfer procedure (X.228 RT-TRANSFER), sans-I/O, over the session layer's events.

`RtseSender` turns one APDU into ActivityStart, Data segments of checkpointSize
KiB with a MinorSync after each checkpoint (waiting for MinorSyncAcks when the
window is full) and ActivityEnd; the transfer is confirmed by ActivityEndAck.
`RtseReceiver` reassembles the segments and answers ActivityEnd with
ActivityEndAck only when the application calls `confirm()` (the APDU is durable).
In normal mode the caller wraps each segment in an RTTR and P-DATA; in X.410
mode the segments go in DT as they are.

Recovery (X.228): both sides remember the last checkpoint the receiver
acknowledged. After the connection is lost, `interrupted()` says what was
secured — the activity, that checkpoint's serial number and, on the
receiving side, the data up to it — and on a new connection `resume()`
continues from there with an ActivityResume, sending only what follows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from waypost.osi import session
from waypost.osi.errors import Layer, LocalProtocolError, RemoteProtocolError
from waypost.osi.rtse import (
    DEFAULT_WINDOW_SIZE,
    MAX_APDU_SIZE,
    MAX_CHECKPOINT_SIZE,
    MAX_WINDOW_SIZE,
    AbortReason,
    RtseProtocolError,
)

__all__ = [
    "DEFAULT_ACTIVITY_ID",
    "Checkpoint",
    "RtseReceiver",
    "RtseSender",
    "TransferState",
]

DEFAULT_ACTIVITY_ID: Final = b"\x01"


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """What an interrupted transfer had secured: the receiver acknowledged minor sync
    `serial` of activity `activity_id`, after `offset` octets (`data`: those octets, kept
    by the receiver only)."""

    activity_id: bytes
    serial: int
    offset: int
    data: bytes = field(default=b"", repr=False)
    #: Receiver: (serial, offset) of every checkpoint it acknowledged; the sender may
    #: resume from an earlier one than `serial` (it may not have seen the last MIA).
    marks: tuple[tuple[int, int], ...] = ()


class TransferState(enum.Enum):
    IDLE = "IDLE"
    TRANSFERRING = "TRANSFERRING"
    AWAIT_CONFIRM = "AWAIT_CONFIRM"  # sender: sent AE; receiver: got AE, the user confirms
    ERROR = "ERROR"


class RtseSender:
    """Sends APDUs one activity each, keeping at most `window_size` minor syncs unconfirmed."""

    def __init__(self, *, checkpoint_size: int = 0, window_size: int = DEFAULT_WINDOW_SIZE) -> None:
        if not 0 <= checkpoint_size <= MAX_CHECKPOINT_SIZE:
            raise LocalProtocolError(Layer.RTSE, f"checkpoint size {checkpoint_size} out of range")
        if not 1 <= window_size <= MAX_WINDOW_SIZE:
            raise LocalProtocolError(Layer.RTSE, f"window size {window_size} out of range")
        self.checkpoint_size = checkpoint_size
        self.window_size = window_size
        self.state = TransferState.IDLE
        #: Transfers confirmed by the peer (ActivityEndAck received).
        self.confirmed = 0
        self._segments: list[bytes] = []
        self._next = 0
        self._syncs = 0  # minor syncs sent in this activity (serials 1..n)
        self._acked = 0  # highest minor sync serial acknowledged
        self._activity_id = DEFAULT_ACTIVITY_ID
        self._base = 0  # the serial and offset a resumed transfer started from
        self._base_offset = 0

    @property
    def outstanding(self) -> int:
        """Minor sync points sent and not yet acknowledged."""
        return self._syncs - self._acked

    def transfer(
        self, apdu: bytes, activity_id: bytes = DEFAULT_ACTIVITY_ID
    ) -> list[session.Event]:
        """Start sending `apdu`: the session events to send now."""
        if self.state is not TransferState.IDLE:
            raise LocalProtocolError(
                Layer.RTSE, f"cannot start a transfer in state {self.state.name}"
            )
        if not apdu:
            raise LocalProtocolError(Layer.RTSE, "cannot transfer an empty APDU")
        self._start(apdu, activity_id, 0, 0)
        return [session.ActivityStart(activity_id=activity_id), *self._pump()]

    def resume(
        self,
        apdu: bytes,
        point: Checkpoint,
        *,
        activity_id: bytes = DEFAULT_ACTIVITY_ID,
        old_connection: session.ConnectionId | None = None,
    ) -> list[session.Event]:
        """Continue `apdu` after `point` (an `interrupted()` of an earlier connection)."""
        if self.state is not TransferState.IDLE:
            raise LocalProtocolError(
                Layer.RTSE, f"cannot resume a transfer in state {self.state.name}"
            )
        if not 0 < point.offset < len(apdu):
            raise LocalProtocolError(
                Layer.RTSE, f"resume offset {point.offset} is not inside the APDU"
            )
        self._start(apdu[point.offset :], activity_id, point.serial, point.offset)
        resume = session.ActivityResume(
            activity_id=activity_id,
            old_activity_id=point.activity_id,
            serial=point.serial,
            old_connection=old_connection,
        )
        return [resume, *self._pump()]

    def _start(self, data: bytes, activity_id: bytes, serial: int, offset: int) -> None:
        size = self.checkpoint_size * 1024 or len(data)
        self._segments = [data[i : i + size] for i in range(0, len(data), size)]
        self._next = 0
        self._syncs = self._acked = self._base = serial
        self._base_offset = offset
        self._activity_id = activity_id
        self.state = TransferState.TRANSFERRING

    def interrupted(self) -> Checkpoint | None:
        """After a lost connection mid-transfer: the last checkpoint the receiver secured."""
        if self.state not in (TransferState.TRANSFERRING, TransferState.AWAIT_CONFIRM):
            return None
        if self._acked == 0:
            return None
        done = self._acked - self._base  # segments of this connection before that checkpoint
        offset = self._base_offset + sum(len(seg) for seg in self._segments[:done])
        return Checkpoint(activity_id=self._activity_id, serial=self._acked, offset=offset)

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
        return RtseProtocolError(message, reason=AbortReason.PROTOCOL_ERROR)

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
        # Octets received when each acknowledged minor sync point was reached, by serial.
        self._marks: dict[int, int] = {}
        self._acked = 0
        #: The checkpoint a resumed activity may start from (set by `expect_resume`).
        self._resumable: Checkpoint | None = None

    def _fail(self, message: str, reason: AbortReason = AbortReason.PROTOCOL_ERROR) -> Exception:
        self.state = TransferState.ERROR
        return RtseProtocolError(message, reason=reason)

    def receive(self, event: session.Event) -> list[session.Event]:
        """A session event from the peer: the session events to answer with now."""
        st = self.state
        if isinstance(event, session.ActivityStart) and st is TransferState.IDLE:
            self.state = TransferState.TRANSFERRING
            self.activity_id = event.activity_id
            self._parts, self._size = [], 0
            self._marks, self._acked = {}, 0
            return []
        if isinstance(event, session.ActivityResume) and st is TransferState.IDLE:
            return self._resume(event)
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
            self._marks[event.serial] = self._size
            self._acked = event.serial
            return [session.MinorSyncAck(serial=event.serial)]
        if isinstance(event, session.ActivityEnd) and st is TransferState.TRANSFERRING:
            if not self._size:
                raise self._fail("activity ended without data")
            self.state = TransferState.AWAIT_CONFIRM
            return []
        raise self._fail(f"unexpected {type(event).__name__} in state {st.name}")

    def _resume(self, event: session.ActivityResume) -> list[session.Event]:
        point = self._resumable
        if point is None:
            raise self._fail("ActivityResume but no interrupted transfer was recovered")
        marks = dict(point.marks) or {point.serial: point.offset}
        if event.old_activity_id != point.activity_id or event.serial not in marks:
            raise self._fail(
                f"ActivityResume of activity {event.old_activity_id!r} after checkpoint "
                f"{event.serial}: only {point.activity_id!r} up to {point.serial} is held"
            )
        offset = marks[event.serial]
        self._resumable = None
        self.state = TransferState.TRANSFERRING
        self.activity_id = event.activity_id
        self._parts, self._size = [point.data[:offset]], offset
        self._marks = {k: v for k, v in marks.items() if k <= event.serial}
        self._acked = event.serial
        return []

    def expect_resume(self, point: Checkpoint) -> None:
        """A recovered connection: accept an ActivityResume continuing `point`."""
        if self.state is not TransferState.IDLE:
            raise LocalProtocolError(
                Layer.RTSE, f"cannot expect a resume in state {self.state.name}"
            )
        if len(point.data) != point.offset:
            raise LocalProtocolError(Layer.RTSE, "a receiver's checkpoint must hold its data")
        self._resumable = point

    def interrupted(self) -> Checkpoint | None:
        """After a lost connection mid-transfer: what was received up to the last
        checkpoint this side acknowledged (None if there is none)."""
        if self.state is not TransferState.TRANSFERRING or not self._acked:
            return None
        assert self.activity_id is not None
        offset = self._marks[self._acked]
        data = b"".join(self._parts)[:offset]
        return Checkpoint(
            activity_id=self.activity_id,
            serial=self._acked,
            offset=offset,
            data=data,
            marks=tuple(sorted(self._marks.items())),
        )

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
            raise LocalProtocolError(Layer.RTSE, f"nothing to confirm in state {self.state.name}")
        self.state = TransferState.IDLE
        self._parts, self._size = [], 0
        return [session.ActivityEndAck()]
