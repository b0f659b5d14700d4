"""systemd's readiness protocol (sd_notify(3)): state lines in one datagram to $NOTIFY_SOCKET.

The protocol is a few `KEY=value` lines sent over a unix datagram socket, so it is written
here rather than taken from a library: without $NOTIFY_SOCKET (not started by systemd)
every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time

READY = "READY=1"
RELOADING = "RELOADING=1"
STOPPING = "STOPPING=1"


def monotonic_usec() -> str:
    """`MONOTONIC_USEC=…`, which systemd ≥ 253 wants with RELOADING=1 (Type=notify-reload)
    to tell this reload from an earlier one; CLOCK_MONOTONIC, as systemd's own clock."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def notify(*lines: str) -> bool:
    """Send the state lines to the service manager; False when there is none to tell or
    the datagram could not be sent (the service runs on either way)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or not lines:
        return False
    if address.startswith("@"):  # an abstract socket (sd_notify(3))
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # vsock: and other transports are not for a local service
    payload = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(payload, address)
    except OSError:
        return False
    return True
