"""Next hops found unreachable: the queue manager's dead-destination cache (Postfix's qmgr).

A delivery agent that could not use a next hop at all (no connection, no greeting, no
open) says so with `Attempt.hop_failure`. The hop is then down: its other recipients are
deferred without a try each, with the hop's current error, until its probe time; then
one delivery goes ahead as the probe, and the first delivery that reaches the hop brings
it up again. The queue manager logs each change of state once, never each message held.
"""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass

from waypost.handoff import Attempt, Result
from waypost.queue.policy import RetryPolicy

# An enhanced status code (RFC 3463) that begins a detail: kept in front of the text.
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3} ")


class Admission(enum.Enum):
    """What to do with a group of recipients for a next hop."""

    DELIVER = "deliver"  # the hop is up
    PROBE = "probe"  # the hop is down and its probe time has come: this group tries it
    HOLD = "hold"  # the hop is down: defer without a try


@dataclass(slots=True, kw_only=True)
class Down:
    """A next hop found unreachable, on the queue's clock."""

    since: float
    error: str  # from the latest try: what the held recipients show
    final: bool  # the agent failed the recipients for good (an X.400 peer past its retries)
    probe_at: float  # no try before this; then one
    probing: bool = False


class Destinations:
    """The next hops that are down, by their stored text (`Claim.next_hop`)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._down: dict[str, Down] = {}

    def admit(self, hop: str, now: float) -> Admission:
        """Deliver, probe or hold; a PROBE answer makes this caller the one probe, until
        `probe_done`."""
        down = self._down.get(hop)
        if down is None:
            return Admission.DELIVER
        if down.probing or now < down.probe_at:
            return Admission.HOLD
        down.probing = True
        return Admission.PROBE

    def down(self, hop: str) -> Down | None:
        return self._down.get(hop)

    def failed(self, hop: str, failure: Attempt, now: float) -> bool:
        """Record a hop failure; True when the hop was up until now (a change of state).

        The next probe waits the agent's own interval when it gave one (an X.400 peer's
        open interval), else the queue's back-off for a hop down that long, as a message
        that old would wait (Postfix waits its minimal back-off)."""
        down = self._down.get(hop)
        changed = down is None
        if down is None:
            down = self._down[hop] = Down(since=now, error="", final=False, probe_at=now)
        # An agent that held the recipients back itself (attempted False) repeats an older
        # error: only a real try tells the current one.
        if failure.attempted or not down.error:
            down.error = failure.detail
            down.final = failure.result is Result.FAILED
        wait = failure.retry_after
        if wait is None:
            wait = self.policy.delay(now - down.since)
        down.probe_at = max(down.probe_at, now + wait)
        return changed

    def reached(self, hop: str) -> Down | None:
        """A delivery reached the hop: it is up. Returns what it was, when it was down."""
        return self._down.pop(hop, None)

    def probe_done(self, hop: str) -> None:
        """The probe's delivery is over, whatever came of it."""
        down = self._down.get(hop)
        if down is not None:
            down.probing = False

    def down_hops(self) -> list[str]:
        """The next hops down now."""
        return list(self._down)

    def forget(self) -> int:
        """Every hop is taken to be up again (an operator's flush); returns how many were down."""
        count = len(self._down)
        self._down.clear()
        return count

    def held_detail(self, hop: str, down: Down) -> str:
        """What a held recipient shows: the hop's current error, since when, and when the
        next try is (Postfix: "delivery temporarily suspended: …")."""
        if down.final:
            return down.error
        match = _STATUS.match(down.error)
        status = match.group(0) if match else ""
        error = down.error[len(status) :]
        return (
            f"{status}delivery temporarily suspended: {hop} unreachable since "
            f"{iso(down.since)}: {error}; next attempt at {iso(down.probe_at)}"
        )


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
