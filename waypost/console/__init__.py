"""The web console: queues, messages, peers, events and metrics, and operator actions;
the service starts it with `start_console(ConsoleContext(...), host, port)`."""

from __future__ import annotations

from waypost.console.app import ConsoleServer, build_app, start_console
from waypost.console.context import ConsoleContext, PeerView
from waypost.console.recent import RecentEvent, RecentEvents

__all__ = [
    "ConsoleContext",
    "ConsoleServer",
    "PeerView",
    "RecentEvent",
    "RecentEvents",
    "build_app",
    "start_console",
]
