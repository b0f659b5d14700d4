"""A tiny stdlib-only capture reader: TCP byte streams out of pcap and pcapng files.

Reads classic libpcap (both byte orders, micro/nanosecond) and pcapng (SHB, IDB,
EPB, SPB, obsolete PB) files with Ethernet (optionally 802.1Q-tagged), Linux
cooked (SLL, SLL2), BSD loopback / null and raw-IP link types, IPv4/IPv6 + TCP,
and reassembles each direction's byte stream per connection by sequence number
(retransmissions and out-of-order segments are handled; gaps are not filled).

    for s in tcp_streams("msg88.pcap"):
        s.client_to_server, s.server_to_client, s.client_port, s.server_port
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Packet", "Stream", "packets", "tcp_streams"]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_TCP_SYN = 0x02


class PcapError(ValueError):
    """The file is not a capture this reader understands."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Packet:
    """One TCP segment: addresses as strings, ports, sequence number, flags, payload."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Stream:
    """Both directions of one TCP connection; the client is whoever sent the first SYN."""

    client: str
    server: str
    client_port: int
    server_port: int
    client_to_server: bytes
    server_to_client: bytes


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(link type, frame bytes) for every captured frame of a pcap or pcapng file."""
    if len(data) < 24:
        raise PcapError("file too short")
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return _pcapng_frames(data)
    for endian in ("<", ">"):
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
            out = []
            off = 24
            while off + 16 <= len(data):
                incl = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
                off += 16
                out.append((linktype, data[off : off + incl]))
                off += incl
            return out
    raise PcapError(f"unknown capture magic {magic.hex()}")


def _pcapng_frames(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    endian = "<"
    linktypes: list[int] = []
    off = 0
    while off + 12 <= len(data):
        if data[off : off + 4] == b"\x0a\x0d\x0d\x0a":
            bom = data[off + 8 : off + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []  # interface ids are per section
        btype, blen = struct.unpack(endian + "II", data[off : off + 8])
        if blen < 12 or off + blen > len(data):
            raise PcapError(f"bad pcapng block length {blen} at {off}")
        body = data[off + 8 : off + blen - 4]
        if btype == 1:  # Interface Description Block
            linktypes.append(struct.unpack(endian + "H", body[:2])[0])
        elif btype == 6:  # Enhanced Packet Block
            ifid, _hi, _lo, caplen = struct.unpack(endian + "IIII", body[:16])
            out.append((linktypes[ifid], body[20 : 20 + caplen]))
        elif btype == 3:  # Simple Packet Block
            (origlen,) = struct.unpack(endian + "I", body[:4])
            out.append((linktypes[0], body[4 : 4 + origlen]))
        elif btype == 2:  # obsolete Packet Block
            ifid = struct.unpack(endian + "H", body[:2])[0]
            caplen = struct.unpack(endian + "I", body[12:16])[0]
            out.append((linktypes[ifid], body[20 : 20 + caplen]))
        off += blen
    return out


def _ip_payload(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(IP version, IP packet) of a link-layer frame, or None for non-IP frames."""
    if linktype == LINKTYPE_ETHERNET:
        ethertype, off = struct.unpack("!H", frame[12:14])[0], 14
        while ethertype in (0x8100, 0x88A8):
            ethertype, off = struct.unpack("!H", frame[off + 2 : off + 4])[0], off + 4
    elif linktype == LINKTYPE_LINUX_SLL:
        ethertype, off = struct.unpack("!H", frame[14:16])[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        ethertype, off = struct.unpack("!H", frame[0:2])[0], 20
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        # The family is in host order for NULL, network order for LOOP; 2 is AF_INET
        # everywhere, AF_INET6 is 10/24/28/30 depending on the OS.
        fam = min(struct.unpack("<I", frame[:4])[0], struct.unpack(">I", frame[:4])[0])
        ethertype = 0x0800 if fam == 2 else 0x86DD
        off = 4
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        ethertype, off = (0x0800 if frame[:1] and frame[0] >> 4 == 4 else 0x86DD), 0
    else:
        raise PcapError(f"unsupported link type {linktype}")
    if ethertype == 0x0800:
        return 4, frame[off:]
    if ethertype == 0x86DD:
        return 6, frame[off:]
    return None


def _tcp(version: int, ip: bytes) -> Packet | None:
    if version == 4:
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6:
            return None
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        seg = ip[ihl:total] if total else ip[ihl:]
    else:
        plen = struct.unpack("!H", ip[4:6])[0]
        nxt, off = ip[6], 40
        while nxt in (0, 43, 60):  # hop-by-hop, routing, destination options
            nxt, off = ip[off], off + 8 * (ip[off + 1] + 1)
        if nxt != 6:
            return None
        src = ":".join(ip[8 + i : 10 + i].hex() for i in range(0, 16, 2))
        dst = ":".join(ip[24 + i : 26 + i].hex() for i in range(0, 16, 2))
        seg = ip[off : 40 + plen]
    sport, dport, seq = struct.unpack("!HHI", seg[:8])
    doff = (seg[12] >> 4) * 4
    return Packet(
        src=src, dst=dst, sport=sport, dport=dport, seq=seq, flags=seg[13], payload=seg[doff:]
    )


def packets(path: str | Path) -> list[Packet]:
    """Every TCP segment of the capture, in capture order."""
    out = []
    for linktype, frame in _frames(Path(path).read_bytes()):
        ip = _ip_payload(linktype, frame)
        if ip is not None and (pkt := _tcp(*ip)) is not None:
            out.append(pkt)
    return out


@dataclass(slots=True)
class _Half:
    isn: int | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)

    def add(self, pkt: Packet) -> None:
        if pkt.flags & _TCP_SYN:
            self.isn = (pkt.seq + 1) & 0xFFFFFFFF
        if pkt.payload:
            if self.isn is None:  # capture started mid-connection
                self.isn = pkt.seq
            rel = (pkt.seq - self.isn) & 0xFFFFFFFF
            if len(pkt.payload) > len(self.chunks.get(rel, b"")):
                self.chunks[rel] = pkt.payload

    def data(self) -> bytes:
        out = bytearray()
        for rel in sorted(self.chunks):
            chunk = self.chunks[rel]
            if rel > len(out):
                break  # a gap: stop rather than invent bytes
            out += chunk[len(out) - rel :]
        return bytes(out)


def tcp_streams(path: str | Path) -> list[Stream]:
    """Every TCP connection of the capture, reassembled, in order of first appearance."""
    conns: dict[tuple[str, int, str, int], tuple[_Half, _Half]] = {}
    order: list[tuple[str, int, str, int]] = []
    for pkt in packets(path):
        fwd = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        rev = (pkt.dst, pkt.dport, pkt.src, pkt.sport)
        if fwd in conns:
            conns[fwd][0].add(pkt)
        elif rev in conns:
            conns[rev][1].add(pkt)
        else:
            # The client is the side whose SYN has no ACK; without a SYN, the sender
            # of the first segment seen.
            is_synack = pkt.flags & 0x12 == 0x12
            key = rev if is_synack else fwd
            conns[key] = (_Half(), _Half())
            order.append(key)
            (conns[key][1] if is_synack else conns[key][0]).add(pkt)
    return [
        Stream(
            client=k[0],
            client_port=k[1],
            server=k[2],
            server_port=k[3],
            client_to_server=conns[k][0].data(),
            server_to_client=conns[k][1].data(),
        )
        for k in order
    ]
