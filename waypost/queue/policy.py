"""Retry and expiry policy: a back-off that doubles with the message's age, between bounds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Postfix's scheduler rule: wait about as long as the message is old, clamped.

    Waiting as long as the message's age doubles the age at every attempt, so
    the interval between attempts doubles too, from `min_backoff` up to
    `max_backoff`; after `max_lifetime` the recipient expires.
    """

    min_backoff: float = 300.0
    max_backoff: float = 4000.0
    max_lifetime: float = 432000.0

    def __post_init__(self) -> None:
        if not 0 < self.min_backoff <= self.max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        if self.max_lifetime <= 0:
            raise ValueError("max_lifetime must be positive")

    def delay(self, age: float) -> float:
        return min(max(age, self.min_backoff), self.max_backoff)

    def next_attempt(self, *, now: float, received_at: float) -> float:
        return now + self.delay(now - received_at)
