"""A well-formed P1 initiator on a blocking socket, for tests against a running listener."""

from __future__ import annotations

import socket

from waypost.osi.stack import (
    NEED_DATA,
    Accepted,
    Association,
    AssociationSettings,
    Event,
    Mode,
    Open,
    Role,
)
from waypost.x400.p1_bind import MTABind, encode_bind


class P1Client:
    """The sans-I/O `Association` (initiator) driven over a socket to `port`."""

    def __init__(
        self,
        port: int,
        mode: Mode,
        settings: AssociationSettings,
        *,
        name: str,
        password: str,
        timeout: float,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.port = self.sock.getsockname()[1]
        self.assoc = Association(role=Role.INITIATOR, mode=mode, settings=settings)
        self.name = name
        self.password = password
        self.closed = False

    def send(self, event: Event) -> None:
        self.raw(self.assoc.send(event))

    def raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def until(self, kind: type[Event] | None) -> list[Event]:
        """Read and decode until an event of `kind` (None: until the server closes)."""
        got: list[Event] = []
        while True:
            while (ev := self.assoc.next_event()) is not NEED_DATA:
                assert not isinstance(ev, type(NEED_DATA))
                got.append(ev)
                if kind is not None and isinstance(ev, kind):
                    self.raw(self.assoc.data_to_send())
                    return got
            self.raw(self.assoc.data_to_send())
            if self.closed:
                assert kind is None, f"closed before {kind}: {got}"
                return got
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            except TimeoutError:
                raise AssertionError(f"no {kind} from the server: {got}") from None
            if not data:
                self.closed = True
            self.assoc.receive_data(data)

    def open(self) -> None:
        """Bind with the configured name and password; the server must accept."""
        bind = encode_bind(MTABind(name=self.name, password=self.password))
        self.send(Open(bind_argument=bind))
        (*_, accepted) = self.until(Accepted)
        assert isinstance(accepted, Accepted)

    def close(self) -> None:
        self.sock.close()
