"""A tiny stdlib-only capture writer: one TCP connection as a classic libpcap file.

The tests record the bytes each side of a real connection sent (a relay sees them
as chunks) and turn them into a capture tshark can read without capture
privileges: raw IPv4 frames (LINKTYPE_RAW) with synthetic IPv4 and TCP headers
whose sequence and acknowledgement numbers are consistent, a SYN / SYN-ACK / ACK
handshake first, each side's FIN after its last byte, correct checksums.

    cap = TcpCapture(client_port=40000, server_port=10102)
    cap.handshake(t)
    cap.send(t, from_client=True, data=b"...")
    cap.fin(t, from_client=True)
    cap.write("cap.pcap")

tests/pcap.py reads such files back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LINKTYPE_RAW", "TcpCapture"]

LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link-layer header
_FIN, _SYN, _PSH, _ACK = 0x01, 0x02, 0x08, 0x10
_MAX_SEGMENT = 65495  # loopback's MSS: an IPv4 packet stays below 64 KiB


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(slots=True)
class _Side:
    addr: bytes
    port: int
    isn: int
    seq: int = 0  # next sequence number this side sends
    ident: int = 0  # IPv4 identification counter


@dataclass(slots=True)
class TcpCapture:
    """The frames of one TCP connection, built segment by segment in capture order."""

    client_port: int
    server_port: int
    client_addr: str = "127.0.0.1"
    server_addr: str = "127.0.0.1"
    max_segment: int = _MAX_SEGMENT
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    _sides: tuple[_Side, _Side] | None = None

    def __post_init__(self) -> None:
        client = _Side(bytes(map(int, self.client_addr.split("."))), self.client_port, 0x1000)
        server = _Side(bytes(map(int, self.server_addr.split("."))), self.server_port, 0x8000)
        client.seq, server.seq = client.isn, server.isn
        self._sides = (client, server)

    def _pair(self, from_client: bool) -> tuple[_Side, _Side]:
        assert self._sides is not None
        client, server = self._sides
        return (client, server) if from_client else (server, client)

    def _segment(self, t: float, from_client: bool, flags: int, payload: bytes = b"") -> None:
        src, dst = self._pair(from_client)
        ack = dst.seq if flags & _ACK else 0
        tcp = struct.pack(
            "!HHIIBBHHH", src.port, dst.port, src.seq, ack, 5 << 4, flags, 65535, 0, 0
        )
        pseudo = src.addr + dst.addr + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        csum = _checksum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, total, src.ident, 0x4000, 64, 6, 0, src.addr, dst.addr
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        src.ident = (src.ident + 1) & 0xFFFF
        src.seq = (src.seq + len(payload) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF
        self.frames.append((t, ip + tcp + payload))

    def handshake(self, t: float) -> None:
        """SYN from the client, SYN-ACK from the server, ACK from the client."""
        self._segment(t, True, _SYN)
        self._segment(t, False, _SYN | _ACK)
        self._segment(t, True, _ACK)

    def send(self, t: float, *, from_client: bool, data: bytes) -> None:
        """`data` as one or more PSH/ACK segments of at most `max_segment` bytes."""
        for off in range(0, len(data), self.max_segment):
            self._segment(t, from_client, _PSH | _ACK, data[off : off + self.max_segment])

    def fin(self, t: float, *, from_client: bool) -> None:
        """That side closes its direction; the other side acknowledges it."""
        self._segment(t, from_client, _FIN | _ACK)
        self._segment(t, not from_client, _ACK)

    def to_bytes(self) -> bytes:
        """The classic libpcap file: microsecond timestamps, LINKTYPE_RAW."""
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_RAW)]
        for t, frame in self.frames:
            sec = int(t)
            usec = min(round((t - sec) * 1_000_000), 999_999)
            out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        return b"".join(out)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path
