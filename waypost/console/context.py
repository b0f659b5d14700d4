"""What the service gives the console: where the MTA keeps its data, who may log in, and
live views of the running MTA (events, metrics, X.400 peers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from waypost.console.recent import RecentEvents
from waypost.store.location import DatabaseLocation


@dataclass(frozen=True, slots=True)
class PeerView:
    """One adjacent X.400 MTA as the console shows it: its associations open each way, and
    the attempts to open one that failed."""

    name: str
    address: str
    inbound: int
    outbound: int
    failed: int


@dataclass(frozen=True, kw_only=True)
class ConsoleContext:
    """The running MTA as the console sees it. `users_path` is read again at each login, so
    that an operator added with `waypost password-hash` needs no restart."""

    database: DatabaseLocation
    tracking_path: str | None
    users_path: str
    session_timeout: float
    recent: RecentEvents
    samples: Callable[[], Mapping[str, float]] | None
    peers: Callable[[], Sequence[PeerView]]
    # Wakes the queue manager after an action made mail due (retry, release, reroute).
    queue_changed: Callable[[], None]
    hostname: str
