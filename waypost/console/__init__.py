"""The web console: queues, messages, peers, events and metrics, and operator actions;
the service starts it with `start_console(ConsoleContext(...), host, port)`.

The names below are imported when first used: a command that never serves the console
(`waypost queue list`, `waypost-sendmail`) does not pay for aiohttp and Jinja2.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from waypost.console.app import ConsoleServer, build_app, start_console
    from waypost.console.context import ConsoleContext, PeerView
    from waypost.console.recent import RecentEvent, RecentEvents

_HOMES = {
    "ConsoleServer": "waypost.console.app",
    "build_app": "waypost.console.app",
    "start_console": "waypost.console.app",
    "ConsoleContext": "waypost.console.context",
    "PeerView": "waypost.console.context",
    "RecentEvent": "waypost.console.recent",
    "RecentEvents": "waypost.console.recent",
}

__all__ = [
    "ConsoleContext",
    "ConsoleServer",
    "PeerView",
    "RecentEvent",
    "RecentEvents",
    "build_app",
    "start_console",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
