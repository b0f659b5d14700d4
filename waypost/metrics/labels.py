"""Bounded label values: a label that names a next hop or a peer gets at most so many
values, and the rest share one, so that mail to many domains cannot make series without
end (Prometheus: "do not use labels for unbounded sets")."""

from __future__ import annotations

import threading

OTHER = "other"


class LabelBudget:
    """The first `limit` values seen keep their name; later ones are `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = str(value) if value is not None else ""
        if text in self._known:
            return text
        with self._lock:
            if len(self._known) < self.limit:
                self._known.add(text)
                return text
        return OTHER

    def known(self, value: str) -> bool:
        return value in self._known


def transport_of(next_hop: str) -> str:
    """`smtp`, `x400`, `local`, `gateway` or `error`: the delivery agent a next hop names."""
    transport = next_hop.partition(":")[0]
    return transport if transport in ("smtp", "x400", "local", "gateway", "error") else OTHER
