"""A TCP listener whose accept() failures are events, never the end of the listener.

Exchange 5.5's MTA logged socket accept() errors it could not recover from,
then terminated (KB Q276222). Here every accept() failure — EMFILE, ENFILE,
ENOBUFS, ENOMEM, ECONNABORTED, anything — is logged as event 1600, backed
off (doubling, bounded) and retried; connections already open are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from waypost import events

# Any other failure (EMFILE, ENFILE, ENOBUFS, ENOMEM…) is waited out: the
# pending connection keeps the listening socket readable, and retrying at
# once would be a busy loop. A failure of one pending connection (the peer
# gave up) is not waited out: the next one is tried at once.
_TRANSIENT_ERRORS = frozenset({errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EPERM})


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    """How many connections a listener keeps open, in total, per client address, and per
    client network (a /24 for IPv4, a /64 for IPv6: one network holding many addresses
    must not take every slot; None for no such limit)."""

    max_total: int = 1000
    max_per_client: int = 50
    max_per_network: int | None = None
    backlog: int = 512
    min_backoff: float = 0.05
    max_backoff: float = 2.0


@dataclass(frozen=True, slots=True)
class Admission:
    """What the listener tells a new connection: its peer, and whether it is over a limit."""

    peer: tuple[str, int]
    refused: str | None


ProtocolFactory = Callable[[Admission, Callable[[], None]], asyncio.Protocol]


class Listener:
    """Accepts on one or more addresses and hands each connection to `factory`.

    The factory gets the Admission and a `release` callback that the protocol
    calls once when its connection ends, so the limits count live connections.
    """

    def __init__(
        self,
        name: str,
        addresses: list[tuple[str, int]],
        factory: ProtocolFactory,
        *,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.name = name
        self.addresses = addresses
        self.factory = factory
        self.limits = limits or ConnectionLimits()
        self.sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.open_connections = 0
        self._per_client: Counter[str] = Counter()
        self._per_network: Counter[str] = Counter()
        self._connecting: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for host, port in self.addresses:
            try:
                self.sockets.extend(_bind(host, port, self.limits.backlog))
            except OSError as exc:  # an address in use, not ours, a name that does not resolve
                raise ListenError(self.name, host, port, exc) from None
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            self._tasks.append(loop.create_task(self._accept_loop(sock)))

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The addresses actually bound (port 0 in the configuration picks a free port)."""
        return [sock.getsockname()[:2] for sock in self.sockets]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self.sockets:
            sock.close()
        self._tasks.clear()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        where = "{}:{}".format(*sock.getsockname()[:2])
        delay = self.limits.min_backoff
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                if exc.errno in _TRANSIENT_ERRORS:
                    events.emit(
                        events.ACCEPT_FAILED,
                        listener=f"{self.name} {where}",
                        error=_describe(exc),
                        delay=0,
                    )
                    continue
                events.emit(
                    events.ACCEPT_FAILED,
                    listener=f"{self.name} {where}",
                    error=_describe(exc),
                    delay=f"{delay:g}",
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.limits.max_backoff)
                continue
            except Exception as exc:  # never let the accept loop die
                events.emit(
                    events.ACCEPT_FAILED,
                    listener=f"{self.name} {where}",
                    error=repr(exc),
                    delay=f"{delay:g}",
                )
                await asyncio.sleep(delay)
                continue
            delay = self.limits.min_backoff
            self._admit(conn, (str(peer[0]), int(peer[1])))

    def _admit(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        client = peer[0]
        network = client_network(client)
        limits = self.limits
        refused = None
        if self.open_connections >= limits.max_total:
            refused = f"too many connections ({limits.max_total})"
        elif self._per_client[client] >= limits.max_per_client:
            refused = f"too many connections from {client} ({limits.max_per_client})"
        elif (
            limits.max_per_network is not None
            and self._per_network[network] >= limits.max_per_network
        ):
            refused = f"too many connections from {network} ({limits.max_per_network})"
        self.open_connections += 1
        self._per_client[client] += 1
        self._per_network[network] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.open_connections -= 1
            for counter, key in ((self._per_client, client), (self._per_network, network)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

        loop = asyncio.get_running_loop()
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            protocol = self.factory(Admission(peer=peer, refused=refused), release)
            task = loop.create_task(self._connect(conn, protocol, release))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        except Exception as exc:
            release()
            conn.close()
            events.emit(events.UNEXPECTED_ERROR, component=f"{self.name} listener", error=repr(exc))

    async def _connect(
        self, conn: socket.socket, protocol: asyncio.Protocol, release: Callable[[], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: protocol, conn)
        except Exception as exc:
            release()
            conn.close()
            events.emit(events.UNEXPECTED_ERROR, component=f"{self.name} listener", error=repr(exc))


def client_network(client: str) -> str:
    """The network a client address counts against: its /24 (IPv4) or /64 (IPv6), an
    IPv4-mapped IPv6 address as IPv4; anything else (a Unix socket) as itself."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class ListenError(OSError):
    """A listener could not bind one of its addresses: `address` is its `host:port`."""

    def __init__(self, listener: str, host: str, port: int, exc: OSError) -> None:
        self.listener = listener
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.reason = _describe(exc)
        super().__init__(exc.errno, f"cannot listen on {self.address} ({listener}): {self.reason}")

    def __str__(self) -> str:
        return str(self.strerror)


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name} {exc.strerror}" if name else str(exc)


def _bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    bound = []
    for family, kind, proto, _, address in infos[:1] if host else infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        bound.append(sock)
    return bound
