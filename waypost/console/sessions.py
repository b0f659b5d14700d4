"""Operators' sessions, in memory: a random token in an HttpOnly cookie names one, and each
carries the CSRF token every form of that session must send back."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Session:
    token: str
    user: str
    csrf: str
    expires: float  # on the sessions' clock
    flash: str | None = None  # what the last action did, shown once on the next page

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())

    def take_flash(self) -> str | None:
        flash, self.flash = self.flash, None
        return flash


class Sessions:
    """The open sessions; one ends `timeout` seconds after its login, or at logout."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._open: dict[str, Session] = {}

    def start(self, user: str) -> Session:
        self._prune()
        session = Session(
            token=secrets.token_urlsafe(32),
            user=user,
            csrf=secrets.token_urlsafe(32),
            expires=self.clock() + self.timeout,
        )
        self._open[session.token] = session
        return session

    def find(self, token: str | None) -> Session | None:
        """The session the token names, unless it has expired."""
        if not token:
            return None
        session = self._open.get(token)
        if session is None:
            return None
        if self.clock() >= session.expires:
            del self._open[token]
            return None
        return session

    def end(self, token: str) -> None:
        self._open.pop(token, None)

    def _prune(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._open.items() if now >= s.expires]:
            del self._open[token]
