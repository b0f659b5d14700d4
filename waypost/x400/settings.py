"""What the P1 listener and the x400 delivery agent are given: this MTA's X.400 identity and
its adjacent MTAs, built from the configuration by `waypost.setup.x400`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerSettings:
    """An adjacent MTA and its connector parameters (those of an Exchange 5.5 X.400 connector).

    Durations are in seconds; `checkpoint_size` is in KiB; the selectors are the
    peer's T/S/P selectors, empty when it has none.
    """

    name: str
    address: str  # host:port
    mode: str  # a key of waypost.x400.association.MODES
    our_name: str  # "" binds with X400Settings.mta_name
    our_password: str = field(repr=False)
    peer_password: str = field(repr=False)
    t_selector: bytes
    s_selector: bytes
    p_selector: bytes
    checkpoint_size: int
    window_size: int
    recovery_timeout: float
    association_lifetime: float
    disconnect_timeout: float
    max_open_retries: int
    max_transfer_retries: int
    open_interval: float
    transfer_interval: float
    threshold: int
    max_associations: int
    connect_timeout: float
    answer_timeout: float
    two_way_alternate: bool
    # Kept open at all times, reopened when lost (not released after association_lifetime).
    permanent_associations: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class X400Settings:
    """This MTA's name and global domain, the listener's timeouts, and the adjacent MTAs."""

    mta_name: str
    global_domain: str  # the O/R text form, /C=../ADMD=../PRMD=../
    bind_timeout: float
    idle_timeout: float
    peer: tuple[PeerSettings, ...] = ()
