"""The protocol settings built from a loaded configuration (waypost.setup)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from waypost.config import X400PeerConfig, load_config
from waypost.setup.preflight import check_configuration, directory_problem
from waypost.setup.x400 import x400_settings
from waypost.x400.settings import PeerSettings

SELECTORS = ("t_selector", "s_selector", "p_selector")


def test_x400_settings_carry_every_peer_value(tmp_path: Path) -> None:
    path = tmp_path / "waypost.toml"
    path.write_text(
        '[x400]\nmta_name = "HERE-MTA"\nglobal_domain = "/C=GB/ADMD= /PRMD=Here/"\n'
        "bind_timeout = 7\nidle_timeout = 8.5\n"
        '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:102"\nmode = "x410"\n'
        'our_password = "ours"\npeer_password = "theirs"\n'
        't_selector = "hex:0102"\ns_selector = "SSEL"\nwindow_size = 9\n'
        '[[x400.peer]]\nname = "B-MTA"\naddress = "[::1]:1102"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    settings = x400_settings(config)
    assert (settings.mta_name, settings.global_domain) == ("HERE-MTA", "/C=GB/ADMD= /PRMD=Here/")
    assert (settings.bind_timeout, settings.idle_timeout) == (7.0, 8.5)
    assert [peer.name for peer in settings.peer] == ["A-MTA", "B-MTA"]
    for configured, peer in zip(config.x400.peer, settings.peer, strict=True):
        for field in msgspec.structs.fields(X400PeerConfig):
            if field.name not in SELECTORS:
                assert getattr(peer, field.name) == getattr(configured, field.name), field.name
    a, b = settings.peer
    assert (a.t_selector, a.s_selector, a.p_selector) == (b"\x01\x02", b"SSEL", b"")
    assert (b.t_selector, b.s_selector, b.p_selector) == (b"", b"", b"")


def test_peer_settings_keep_the_passwords_out_of_repr(tmp_path: Path) -> None:
    path = tmp_path / "waypost.toml"
    path.write_text(
        '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:102"\n'
        'our_password = "s3cret"\npeer_password = "t0ken"\n',
        encoding="utf-8",
    )
    settings = x400_settings(load_config(path))
    assert "s3cret" not in repr(settings) and "t0ken" not in repr(settings)
    assert isinstance(settings.peer[0], PeerSettings)
    assert (settings.peer[0].our_password, settings.peer[0].peer_password) == ("s3cret", "t0ken")


def test_directory_problem_names_what_is_in_the_way(tmp_path: Path) -> None:
    assert directory_problem(str(tmp_path)) is None
    assert directory_problem(str(tmp_path / "new" / "deeper")) is None  # it can be made
    (tmp_path / "file").write_text("x")
    assert directory_problem(str(tmp_path / "file")) == "it is not a directory"
    assert directory_problem(str(tmp_path / "file" / "data")) == (
        f"it cannot be made: {tmp_path / 'file'} is not a directory"
    )
    assert not (tmp_path / "new").exists()  # it only looks


def test_one_place_in_the_way_hides_no_other_problem(tmp_path: Path) -> None:
    path = tmp_path / "waypost.toml"
    path.write_text(
        '[server]\ndata_dir = "file/data"\n[smtp]\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
        '[local]\nmaildir = "file/data/maildir"\n',
        encoding="utf-8",
    )
    (tmp_path / "file").write_text("x")
    config, problems = check_configuration(str(path))
    assert config is not None
    assert [(p.key, p.reason.split(": ")[0]) for p in problems] == [
        ("server.data_dir", f"{tmp_path / 'file' / 'data'} cannot be used"),
        ("smtp.tls_cert", "cannot read " + str(tmp_path / "c.pem")),
    ]  # the Maildir under the data directory is not reported again
