"""Building the X.400 listener's and delivery agent's settings from the configuration."""

from __future__ import annotations

from waypost.config import Config, X400PeerConfig, selector_bytes
from waypost.x400.settings import PeerSettings, X400Settings


def x400_settings(config: Config) -> X400Settings:
    """The [x400] section and its peers, for `X400Server` and `X400Deliverer`."""
    x400 = config.x400
    return X400Settings(
        mta_name=x400.mta_name,
        global_domain=x400.global_domain,
        bind_timeout=x400.bind_timeout,
        idle_timeout=x400.idle_timeout,
        peer=tuple(peer_settings(peer) for peer in x400.peer),
    )


def peer_settings(peer: X400PeerConfig) -> PeerSettings:
    """One [[x400.peer]]; its selectors are valid in a loaded Config."""
    return PeerSettings(
        name=peer.name,
        address=peer.address,
        mode=peer.mode,
        our_name=peer.our_name,
        our_password=peer.our_password,
        peer_password=peer.peer_password,
        t_selector=selector_bytes(peer.t_selector),
        s_selector=selector_bytes(peer.s_selector),
        p_selector=selector_bytes(peer.p_selector),
        checkpoint_size=peer.checkpoint_size,
        window_size=peer.window_size,
        recovery_timeout=peer.recovery_timeout,
        association_lifetime=peer.association_lifetime,
        disconnect_timeout=peer.disconnect_timeout,
        max_open_retries=peer.max_open_retries,
        max_transfer_retries=peer.max_transfer_retries,
        open_interval=peer.open_interval,
        transfer_interval=peer.transfer_interval,
        threshold=peer.threshold,
        max_associations=peer.max_associations,
        permanent_associations=peer.permanent_associations,
        connect_timeout=peer.connect_timeout,
        answer_timeout=peer.answer_timeout,
        two_way_alternate=peer.two_way_alternate,
    )
