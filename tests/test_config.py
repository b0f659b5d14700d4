"""The configuration file: defaults, every kind of error, relative paths, and docs that match."""

from __future__ import annotations

import os
import pickle
import re
import tomllib
import typing
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.config import (
    EMBEDDED,
    SECTIONS,
    Config,
    ConfigError,
    X400PeerConfig,
    check_config_file,
    default_data_dir,
    dump_defaults,
    load_config,
    parse_address,
    toml_value,
)
from waypost.config.schema import AftnPeerConfig, MixerMappingConfig, SmtpListenerConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "waypost.toml"
DOCS = ROOT / "docs" / "configuration.md"


def write(tmp_path: Path, text: str, name: str = "waypost.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {info.value.key}: {info.value.reason}"
    return info.value


# --- defaults ------------------------------------------------------------------------------


def test_defaults_load_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.source == EMBEDDED
    assert config.server.hostname == "localhost"
    data_dir = Path(default_data_dir())
    assert data_dir.is_absolute()
    assert config.server.data_dir == str(data_dir)
    assert config.store.path == str(data_dir / "mta.db")
    assert config.local.maildir == str(data_dir / "maildir")
    assert config.local.x400_store == str(data_dir / "x400store")
    assert config.log.json_file == ""
    assert config.route == ()
    # Wherever a command runs, the defaults name the same data directory.
    monkeypatch.chdir("/")
    assert load_config(None) == config


def test_default_data_dir_is_absolute_for_root_and_for_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_data_dir() == "/var/lib/waypost"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_data_dir() == str(tmp_path / "state" / "waypost")
    # The XDG Base Directory specification: a relative value is ignored, as an unset one.
    for value in ("relative/state", ""):
        monkeypatch.setenv("XDG_STATE_HOME", value)
        assert default_data_dir() == str(tmp_path / "home" / ".local" / "state" / "waypost")


def test_defaults_are_the_documented_values() -> None:
    config = Config()
    assert (config.server.hostname, config.server.data_dir) == ("localhost", "")
    assert (config.log.level, config.log.json_file) == ("info", "")
    store = config.store
    assert (store.path, store.lease_seconds, store.max_batch) == ("", 300, 1000)
    queue = config.queue
    assert queue.poll_interval == 1.0
    assert queue.batch_size == 256
    assert (queue.min_backoff, queue.max_backoff) == (300, 4000)
    # Urgent, normal and non-urgent: Exchange's MTA's 2, 7 and 10 days.
    lifetimes = (queue.max_lifetime_urgent, queue.max_lifetime, queue.max_lifetime_non_urgent)
    assert lifetimes == (2 * 86400, 7 * 86400, 10 * 86400)
    assert queue.urgent_share == 0.1
    assert (queue.delivery_concurrency, queue.destination_concurrency) == (20, 10)
    local = config.local
    assert (local.domains, local.oraddresses, local.maildir, local.mailboxes) == (
        ("localhost",),
        (),
        "",
        (),
    )
    assert local.x400_store == ""
    assert config.smtp.listen == ("127.0.0.1:2525",)
    assert config.smtp.addresses == (("127.0.0.1", 2525),)
    assert config.x400.listen == ("127.0.0.1:1102",)
    assert config.x400.mta_name == "WAYPOST"


def test_dump_defaults_parses_back_to_an_equal_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, dump_defaults())
    loaded = load_config(path)
    assert loaded.source == str(path)
    assert msgspec.structs.replace(loaded, source=EMBEDDED) == load_config(None)


def test_an_empty_file_is_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "")
    assert msgspec.structs.replace(load_config(path), source=EMBEDDED) == load_config(None)
    assert check_config_file(path) == []


def test_config_is_immutable() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.queue.batch_size = 1  # type: ignore[misc]


# --- errors name the key and the reason ----------------------------------------------------


def test_wrong_type(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[queue]\nmax_backoff = "soon"\n')
    assert (error.key, error.reason) == ("queue.max_backoff", "expected a number, got a string")


def test_wrong_type_inside_an_array(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[local]\ndomains = ["a.example", 3]\n')
    assert (error.key, error.reason) == ("local.domains[1]", "expected a string, got an integer")


def test_a_string_where_an_array_belongs(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[smtp]\nlisten = "0.0.0.0:25"\n')
    assert (error.key, error.reason) == ("smtp.listen", "expected an array, got a string")


def test_integer_key_rejects_a_float_and_a_boolean(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queue]\nbatch_size = 1.5\n")
    assert (error.key, error.reason) == ("queue.batch_size", "expected an integer, got a number")
    error = error_of(tmp_path, "[queue]\nbatch_size = true\n")
    assert error.reason == "expected an integer, got a boolean"


def test_durations_take_integers_and_floats(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[queue]\nmin_backoff = 60\nmax_backoff = 90.5\n"))
    assert (config.queue.min_backoff, config.queue.max_backoff) == (60.0, 90.5)


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queue]\nmax_backof = 10\n")
    assert error.key == "queue.max_backof"
    assert error.reason == "unknown key; did you mean 'max_backoff'?"


def test_unknown_key_far_from_any(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queue]\nzzz = 10\n")
    assert (error.key, error.reason) == ("queue.zzz", "unknown key")


def test_unknown_section(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queu]\nmax_backoff = 10\n")
    assert (error.key, error.reason) == ("queu", "unknown section; did you mean 'queue'?")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    # `source` is a field of Config, but it is ours: a file cannot set it.
    error = error_of(tmp_path, 'source = "elsewhere"\n')
    assert error.key == "source"
    assert error.reason.startswith("unknown key")


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    error = error_of(tmp_path, "queue = 3\n")
    assert (error.key, error.reason) == ("queue", "expected a table, got an integer")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[store]\nmax_batch = 0", "store.max_batch", "must be from 1 to 100000, not 0"),
        ("[store]\nlease_seconds = -1", "store.lease_seconds", "greater than 0, not -1"),
        ("[queue]\npoll_interval = 0", "queue.poll_interval", "greater than 0, not 0"),
        ("[queue]\nmax_lifetime = inf", "queue.max_lifetime", "greater than 0, not inf"),
        ("[queue]\nmin_backoff = nan", "queue.min_backoff", "greater than 0, not nan"),
        ("[queue]\nbatch_size = 100001", "queue.batch_size", "must be from 1 to 100000"),
        ("[queue]\ndelivery_concurrency = 0", "queue.delivery_concurrency", "must be from 1"),
        (
            "[queue]\ndestination_concurrency = 99999999999999999999",
            "queue.destination_concurrency",
            "must be from 1 to 10000",
        ),
        ("[server]\nhostname = 'no such host'", "server.hostname", "not a valid host name"),
        ('[server]\ndata_dir = "a\\u0000b"', "server.data_dir", "must not contain a NUL"),
        (
            "[local]\ndomains = ['ok.example', 'bad_domain.example']",
            "local.domains[1]",
            "'bad_domain.example' is not a valid domain name",
        ),
        ("[local]\nmailboxes = ['../etc']", "local.mailboxes[0]", "not a usable local part"),
        ("[local]\nmailboxes = ['a b']", "local.mailboxes[0]", "not a usable local part"),
        ("[local]\noraddresses = ['']", "local.oraddresses[0]", "must not be empty"),
        ('[smtp]\ntls_key = "\\u0000"', "smtp.tls_key", "must not contain a NUL character"),
        ("[x400]\nmta_name = ''", "x400.mta_name", "1 to 32 printable ASCII characters"),
        ("[x400]\nmta_name = '" + "M" * 33 + "'", "x400.mta_name", "1 to 32 printable"),
        ('[x400]\nmta_name = "TAB\\tNAME"', "x400.mta_name", "1 to 32 printable"),
    ],
)
def test_out_of_range(tmp_path: Path, text: str, key: str, reason: str) -> None:
    error = error_of(tmp_path, text + "\n")
    assert error.key == key
    assert reason in error.reason


def test_min_backoff_above_max_backoff(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queue]\nmin_backoff = 5000\nmax_backoff = 4000\n")
    assert error.key == "queue.min_backoff"
    assert error.reason == "5000 is more than queue.max_backoff (4000)"


def test_bad_log_level_suggests_the_close_one(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[log]\nlevel = "warn"\n')
    assert error.key == "log.level"
    assert error.reason == "must be one of debug, info, warning, error; did you mean 'warning'?"


def test_log_level_and_domains_are_case_insensitive(tmp_path: Path) -> None:
    text = '[log]\nlevel = "DEBUG"\n[local]\ndomains = ["A.Example"]\n'
    config = load_config(write(tmp_path, text))
    assert config.log.level == "debug"
    assert config.local.domains == ("a.example",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("127.0.0.1", "is not host:port"),
        (":25", "is not host:port"),
        ("127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("127.0.0.1:65536", "port must be a number from 1 to 65535"),
        ("127.0.0.1:0002525", "port must be a number from 1 to 65535"),
        ("127.0.0.1:" + "9" * 5000, "port must be a number from 1 to 65535"),
        ("127.0.0.1:smtp", "port must be a number from 1 to 65535"),
        ("::1:25", "an IPv6 address goes in brackets"),
        ("[127.0.0.1]:25", "in brackets is not an IPv6 address"),
        ("bad host:25", "is neither an IP address nor a host name"),
        ("999.1.1.1:25", "is neither an IP address nor a host name"),
    ],
)
def test_bad_listen_address(tmp_path: Path, text: str, reason: str) -> None:
    error = error_of(tmp_path, f'[smtp]\nlisten = ["0.0.0.0:25", "{text}"]\n')
    assert error.key == "smtp.listen[1]"
    assert reason in error.reason


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:2525", "127.0.0.1", 2525),
        ("[::1]:2525", "::1", 2525),
        ("[::]:25", "::", 25),
        ("mail.example.com:65535", "mail.example.com", 65535),
        ("localhost:1", "localhost", 1),
    ],
)
def test_listen_addresses_parse(text: str, host: str, port: int) -> None:
    assert parse_address(text) == (host, port)


def test_x400_listen_addresses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[x400]\nlisten = ["[::1]:102", "0.0.0.0:1102"]\n'))
    assert config.x400.addresses == (("::1", 102), ("0.0.0.0", 1102))
    error = error_of(tmp_path, '[x400]\nlisten = ["0.0.0.0:102000"]\n')
    assert error.key == "x400.listen[0]"


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queue]\nbatch_size = 10\nmax_backoff = \n")
    assert error.key == "line 3, column 15"
    assert error.reason == "TOML syntax error: Invalid value"


def test_toml_syntax_error_at_end_of_document(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[queue]\nbatch_size = 1\nbatch_size = 2\n")
    assert error.key.startswith(("line ", "end of document"))
    assert error.reason.startswith("TOML syntax error: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == ""
    assert str(info.value) == f"{path}: cannot read: No such file or directory"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "waypost.toml"
    path.write_bytes(b'[server]\nhostname = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_deeply_nested_toml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_huge_integer_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "[queue]\nbatch_size = " + "1" * 5000 + "\n")
    with pytest.raises(ConfigError, match="TOML value not usable"):
        load_config(path)


def test_missing_route_next_hop(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        '[[route]]\nmatch = "a.example"\nnext_hop = "local"\n[[route]]\nmatch = "b.example"\n',
    )
    assert (error.key, error.reason) == ("route[1].next_hop", "required key is missing")


def test_empty_route_field(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[route]]\nmatch = " "\nnext_hop = "local"\n')
    assert (error.key, error.reason) == ("route[0].match", "must not be empty")


def test_unknown_route_key(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[route]]\nmatch = "a.example"\nnexthop = "local"\n')
    assert error.key == "route[0].nexthop"
    assert error.reason == "unknown key; did you mean 'next_hop'?"


def test_route_written_as_a_single_table(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[route]\nmatch = "a.example"\nnext_hop = "local"\n')
    assert error.key == "route"
    assert "[[route]]" in error.reason


def test_bad_route_next_hop(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        '[[route]]\nmatch = "a.example"\nnext_hop = "local"\n'
        '[[route]]\nmatch = "b.example"\nnext_hop = "carrier-pigeon:coop"\n',
    )
    assert error.key == "route[1].next_hop"
    assert error.reason
    assert not error.reason.startswith("route[")


def test_bad_route_match(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[route]]\nmatch = "*.example.com"\nnext_hop = "local"\n')
    assert error.key == "route[0].match"
    assert "write '.example.com'" in error.reason


def test_duplicate_route(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        '[[route]]\nmatch = "a.example"\nnext_hop = "local"\n'
        '[[route]]\nmatch = "A.Example"\nnext_hop = "smtp:"\n',
    )
    assert (error.key, error.reason) == ("route[1].match", "duplicate of route[0] ('a.example')")


def test_bad_local_oraddress(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[local]\noraddresses = ["/C=GB/ADMD= /PRMD=Acme/", "nonsense"]\n')
    assert error.key == "local.oraddresses[1]"
    assert "not a valid O/R address prefix" in error.reason


def test_check_reports_every_routing_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[local]\noraddresses = ["nonsense"]\ndomains = ["a..b"]\n'
        '[[route]]\nmatch = ""\nnext_hop = "local"\n'
        '[[route]]\nmatch = "a.example"\nnext_hop = "carrier-pigeon:"\n'
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=Acme/"\nnext_hop = "smtp:"\n',
    )
    keys = sorted(error.key for error in check_config_file(path))
    assert keys == [
        "local.domains[0]",
        "local.oraddresses[0]",
        "route[0].match",
        "route[1].next_hop",
        "route[2].next_hop",
    ]


def test_internationalised_local_domain(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[local]\ndomains = ["Bücher.Example"]\n'))
    assert config.local.domains == ("bücher.example",)


def test_routes_load(tmp_path: Path) -> None:
    text = '[[route]]\nmatch = ".example.com"\nnext_hop = "smtp:[relay.example.net]:25"\n'
    config = load_config(write(tmp_path, text))
    assert [(r.match, r.next_hop) for r in config.route] == [
        (".example.com", "smtp:[relay.example.net]:25")
    ]


def test_check_reports_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[queue]\nmax_backof = 1\n[smtp]\nlisten = 3\n[unknown]\n[log]\nlevel = "loud"\n',
    )
    keys = [error.key for error in check_config_file(path)]
    # A section that does not convert does not hide the range errors of another.
    assert sorted(keys) == ["log.level", "queue.max_backof", "smtp.listen", "unknown"]


def test_check_reports_every_range_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[log]\nlevel = "loud"\n[queue]\nbatch_size = 0\nmin_backoff = 10\nmax_backoff = 5\n'
        '[smtp]\nlisten = ["x", "127.0.0.1:2525", "y"]\n',
    )
    keys = [error.key for error in check_config_file(path)]
    assert keys == [
        "log.level",
        "queue.batch_size",
        "queue.min_backoff",
        "smtp.listen[0]",
        "smtp.listen[2]",
    ]


def test_check_reports_every_bad_key_of_one_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[queue]\nzzz = 1\nbatch_size = 0\nmax_lifetime = "long"\nmin_backoff = 10\n'
        'max_backoff = 5\n[local]\nmaildir = "\\u0000"\nx400_store = "x\\u0000"\n',
    )
    problems = [(error.key, error.reason) for error in check_config_file(path)]
    # In the order of the documented keys, whichever check found them.
    assert problems == [
        ("queue.zzz", "unknown key"),
        ("queue.batch_size", "must be from 1 to 100000, not 0"),
        ("queue.min_backoff", "10 is more than queue.max_backoff (5)"),
        ("queue.max_lifetime", "expected a number, got a string"),
        ("local.maildir", "must not contain a NUL character"),
        ("local.x400_store", "must not contain a NUL character"),
    ]


def schema_constraints() -> list[tuple[str, str, int | float, str]]:
    """(section, key, a value out of range, the reason) for every bounded number."""
    cases = []
    for section, kind in [*SECTIONS.items(), ("x400.peer", X400PeerConfig)]:
        struct = (typing.get_args(kind) or (kind,))[0]
        for field in msgspec.structs.fields(struct):
            info = msgspec.inspect.type_info(field.type)
            info = getattr(info, "type", info)  # under its Metadata
            if isinstance(info, msgspec.inspect.IntType):
                reason = f"must be from {info.ge} to {info.le}, not {info.le + 1}"
                cases.append((section, field.name, info.le + 1, reason))
            elif (
                isinstance(info, msgspec.inspect.FloatType) and info.le is not None and info.le < 1
            ):
                reason = f"must be from {info.ge:g} to {info.le:g}, not 1"  # a share
                cases.append((section, field.name, 1, reason))
            elif isinstance(info, msgspec.inspect.FloatType):
                reason = "must be a number of seconds greater than 0, not 0"
                cases.append((section, field.name, 0, reason))
    return cases


@pytest.mark.parametrize(("section", "key", "value", "reason"), schema_constraints())
def test_every_bounded_number_names_its_key_and_range(
    tmp_path: Path, section: str, key: str, value: float, reason: str
) -> None:
    if section == "x400.peer":
        text = f"{PEER}{key} = {value}\n"
    else:
        text = f"[{section}]\n{key} = {value}\n"
    problems = [(error.key, error.reason) for error in check_config_file(write(tmp_path, text))]
    full_key = f"x400.peer[0].{key}" if section == "x400.peer" else f"{section}.{key}"
    assert problems == [(full_key, reason)]


LEVELS = "must be one of debug, info, warning, error"
TLS = "must be one of none, opportunistic, required"
NAME = "must be 1 to 32 printable ASCII characters"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[log]\nlevel = "loud"', "log.level", f"{LEVELS}, not 'loud'"),
        ('[log]\nlevel = "WARN"', "log.level", f"{LEVELS}; did you mean 'warning'?"),
        ('[smtp_client]\ntls = "requird"', "smtp_client.tls", f"{TLS}; did you mean 'required'?"),
        ('[smtp_client]\ntls = "sometimes"', "smtp_client.tls", f"{TLS}, not 'sometimes'"),
        ('[x400]\nmta_name = "A\\n"', "x400.mta_name", NAME),
        ("[queue]\nmin_backoff = " + "9" * 400, "queue.min_backoff", "number out of range"),
    ],
)  # fmt: skip
def test_choices_and_names(tmp_path: Path, text: str, key: str, reason: str) -> None:
    problems = [(e.key, e.reason) for e in check_config_file(write(tmp_path, text + "\n"))]
    assert problems == [(key, reason)]


@given(st.one_of(st.text(), st.floats(), st.integers(), st.booleans()))
def test_toml_value_round_trips(value: object) -> None:
    if isinstance(value, str):
        # Lone surrogates cannot be written as UTF-8, in TOML or anywhere else.
        value = value.encode("utf-8", "replace").decode("utf-8")
    parsed = tomllib.loads(f"x = {toml_value(value)}")["x"]
    assert parsed == value or (parsed != parsed and value != value)  # nan


def test_config_error_is_a_value_error_and_pickles() -> None:
    error = ConfigError("f.toml", "queue.max_backoff", "too big")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.key, copy.reason) == (error.path, error.key, error.reason)
    assert str(copy) == "f.toml: queue.max_backoff: too big"


# --- relative paths ------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        etc,
        '[server]\ndata_dir = "../var/waypost"\n[log]\njson_file = "log/events.jsonl"\n'
        '[store]\npath = "db/queue.db"\n[local]\nmaildir = "/srv/mail"\n'
        '[smtp]\ntls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\nauth_users = "users"\n',
    )
    config = load_config(os.path.relpath(path))
    assert config.server.data_dir == str(tmp_path / "var" / "waypost")
    assert config.log.json_file == str(etc / "log" / "events.jsonl")
    assert config.store.path == str(etc / "db" / "queue.db")
    assert config.local.maildir == "/srv/mail"
    assert config.local.x400_store == str(tmp_path / "var" / "waypost" / "x400store")
    smtp = config.smtp
    assert (smtp.tls_cert, smtp.tls_key) == (str(etc / "tls/cert.pem"), str(etc / "tls/key.pem"))
    assert smtp.auth_users == str(etc / "users")


def test_places_left_out_are_under_the_data_dir_and_given_ones_under_the_file(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, '[server]\ndata_dir = "state"\n'))
    state = tmp_path / "state"
    assert (config.store.path, config.local.maildir, config.local.x400_store) == (
        str(state / "mta.db"),
        str(state / "maildir"),
        str(state / "x400store"),
    )
    given = load_config(
        write(
            tmp_path,
            '[server]\ndata_dir = "state"\n[store]\npath = "mta.db"\n'
            '[local]\nmaildir = "maildir"\nx400_store = "x400store"\n',
        )
    )
    assert (given.store.path, given.local.maildir, given.local.x400_store) == (
        str(tmp_path / "mta.db"),
        str(tmp_path / "maildir"),
        str(tmp_path / "x400store"),
    )


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'[server]\ndata_dir = "{tmp_path}/data"\n'))
    assert config.server.data_dir == str(tmp_path / "data")
    assert config.store.path == str(tmp_path / "data" / "mta.db")


# --- the example and the documentation -----------------------------------------------------


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert len(config.route) == 3
    assert check_config_file(EXAMPLE) == []


def test_example_file_shows_every_key_with_its_default() -> None:
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    defaults = tomllib.loads(dump_defaults())
    for section, values in defaults.items():
        # x400.peer is shown by an example peer, smtp.listener, mixer.mapping and amhs.peer
        # by commented-out ones.
        tables = {("x400", "peer"), ("smtp", "listener"), ("mixer", "mapping"), ("amhs", "peer")}
        shown = {k: v for k, v in example[section].items() if (section, k) not in tables}
        assert shown == {
            k: v for k, v in values.items() if (section, k) not in tables - {("x400", "peer")}
        }
    # Every key of a peer appears in the example's peer, or is left at its default on purpose.
    assert {"name", "address", "mode"} <= set(example["x400"]["peer"][0])


def section_fields() -> list[tuple[str, str]]:
    """(section, key) for every key of the schema, routes included."""
    keys = []
    for section, kind in SECTIONS.items():
        struct = (typing.get_args(kind) or (kind,))[0]
        keys += [(section, f.name) for f in msgspec.structs.fields(struct)]
    keys += [("x400.peer", f.name) for f in msgspec.structs.fields(X400PeerConfig)]
    keys += [("smtp.listener", f.name) for f in msgspec.structs.fields(SmtpListenerConfig)]
    keys += [("mixer.mapping", f.name) for f in msgspec.structs.fields(MixerMappingConfig)]
    keys += [("amhs.peer", f.name) for f in msgspec.structs.fields(AftnPeerConfig)]
    return keys


def docs_tables() -> dict[str, dict[str, list[str]]]:
    """{section: {key: [cells]}} from the tables under each "## `[section]`" heading."""
    tables: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if heading := re.fullmatch(r"###? `\[+([\w.]+)\]+`.*", line):
            section = heading.group(1)
            tables[section] = {}
        elif line.startswith("## "):
            section = None
        elif section and (row := re.fullmatch(r"\| `(\w+)` \|(.*)\|", line)):
            tables[section][row.group(1)] = [cell.strip() for cell in row.group(2).split("|")]
    return tables


def test_every_key_is_documented() -> None:
    tables = docs_tables()
    assert set(tables) == {*SECTIONS, "x400.peer", "smtp.listener", "mixer.mapping", "amhs.peer"}
    documented = {(section, key) for section, rows in tables.items() for key in rows}
    assert documented == set(section_fields())


def test_documented_defaults_match_the_code() -> None:
    tables = docs_tables()
    for section, values in tomllib.loads(dump_defaults()).items():
        for key, default in values.items():
            type_, documented = tables[section][key][:2]
            assert type_, (section, key)
            assert tomllib.loads(f"x = {documented.strip('`')}")["x"] == default, (section, key)


def test_documented_ranges_are_the_declared_ones() -> None:
    tables = docs_tables()
    for section, key, _, reason in schema_constraints():
        if not reason.startswith("must be from "):
            continue
        low, high = re.findall(r"-?\d+", reason)[:2]
        meaning = tables[section][key][2].replace(",", "")
        meaning = re.sub(r"2\^(\d+)", lambda power: str(2 ** int(power.group(1))), meaning)
        assert f"{low} to {high}." in meaning, (section, key)


# --- nothing from outside gives a traceback ------------------------------------------------

_SCALARS = st.one_of(
    st.integers(), st.floats(), st.text(max_size=20), st.booleans(), st.just([]), st.just({})
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*SECTIONS, "bogus"]),
        st.one_of(
            _SCALARS,
            st.dictionaries(
                st.sampled_from(
                    [
                        "hostname",
                        "level",
                        "max_batch",
                        "min_backoff",
                        "listen",
                        "domains",
                        "mta_name",
                        "match",
                        "next_hop",
                        "mailboxes",
                        "x",
                    ]
                ),
                st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3)),
            ),
            st.lists(
                st.dictionaries(st.sampled_from(["match", "next_hop"]), st.text()), max_size=3
            ),
        ),
    )
)
def test_any_structure_gives_a_config_or_config_errors(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, object]
) -> None:
    lines = []
    for section, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {literal(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {literal(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{section} = {literal(value)}")
    path = tmp_path_factory.mktemp("fuzz") / "waypost.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = check_config_file(path)
    assert all(error.reason for error in errors)
    if not errors:
        load_config(path)


def literal(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return "{}" if isinstance(value, dict) else toml_value(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_config_or_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "waypost.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as error:
        assert error.reason


# --- X.400 peers (connectors) --------------------------------------------------------------

PEER = '[[x400.peer]]\nname = "ACME-MTA"\naddress = "127.0.0.1:10102"\n'


def test_peer_defaults_are_exchange_connector_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, PEER + 'our_password = "s3cret"\n'))
    (peer,) = config.x400.peer
    assert (peer.mode, peer.checkpoint_size, peer.window_size) == ("1988", 30, 5)
    assert (peer.max_open_retries, peer.max_transfer_retries, peer.threshold) == (144, 2, 50)
    assert (peer.open_interval, peer.transfer_interval, peer.association_lifetime) == (
        600,
        120,
        300,
    )
    assert "s3cret" not in repr(peer) and "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ('mode = "1984"\n', "x400.peer[0].mode", "must be one of 1988, x410"),
        ("window_size = 0\n", "x400.peer[0].window_size", "must be from 1 to 100"),
        ('t_selector = "hex:zz"\n', "x400.peer[0].t_selector", "pairs of hex digits"),
        ('address = "nowhere"\n', "x400.peer[0].address", "not host:port"),
    ],
)
def test_bad_peer_entries_name_the_key(tmp_path: Path, extra: str, key: str, reason: str) -> None:
    text = PEER.replace('address = "127.0.0.1:10102"\n', "") if "address" in extra else PEER
    problems = check_config_file(write(tmp_path, text + extra))
    assert any(p.key == key and reason in p.reason for p in problems), problems


def test_a_bad_peer_key_keeps_the_peer_for_the_routes(tmp_path: Path) -> None:
    route = '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=X/"\nnext_hop = "x400:ACME-MTA"\n'
    problems = check_config_file(write(tmp_path, PEER + 'window_size = 0\nmode = "1984"\n' + route))
    assert [p.key for p in problems] == ["x400.peer[0].mode", "x400.peer[0].window_size"]


def test_a_peer_that_does_not_convert_is_not_reported_again_by_routes(tmp_path: Path) -> None:
    name = "M" * 33
    route = f'[[route]]\nmatch = "/C=GB/ADMD= /PRMD=X/"\nnext_hop = "x400:{name}"\n'
    text = f'[[x400.peer]]\nname = "{name}"\naddress = "127.0.0.1:10102"\n' + route
    problems = [(p.key, p.reason) for p in check_config_file(write(tmp_path, text))]
    assert problems == [
        ("x400.peer[0].name", "must be 1 to 32 printable ASCII characters, no spaces")
    ]


def test_duplicate_peer_and_route_to_unknown_peer(tmp_path: Path) -> None:
    problems = check_config_file(write(tmp_path, PEER + PEER))
    assert any(p.key == "x400.peer[1].name" and "twice" in p.reason for p in problems)
    route = '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=X/"\nnext_hop = "x400:OTHER-MTA"\n'
    problems = check_config_file(write(tmp_path, PEER + route))
    assert any(p.key == "route[0].next_hop" and "OTHER-MTA" in p.reason for p in problems)


# --- one problem hides no other ------------------------------------------------------------


def test_an_entry_that_does_not_convert_hides_nothing_in_the_others(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'route = [1, {match = "*.bad", next_hop = "local"}]\n'
        '[[x400.peer]]\naddress = "127.0.0.1:102"\n'
        '[[x400.peer]]\nname = "B-MTA"\naddress = "nowhere"\nt_selector = "hex:x"\n',
    )
    problems = [(error.key, error.reason) for error in check_config_file(path)]
    assert [key for key, _ in problems] == [
        "x400.peer[0].name",
        "x400.peer[1].address",
        "x400.peer[1].t_selector",
        "route[0]",
        "route[1].match",
    ]
    assert problems[3][1] == "expected a table, got an integer"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[smtp]\nauth_users = "users"\n', "smtp.auth_users", "AUTH is offered over TLS only"),
        ('[x400]\nglobal_domain = "/C=GB/PRMD=Acme/"\n', "x400.global_domain", "names no ADMD"),
        ('[x400]\nglobal_domain = "c=GB;p=Acme"\n', "x400.global_domain", "names no ADMD"),
    ],
)
def test_what_serve_could_not_honour_is_an_error(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    error = error_of(tmp_path, text)
    assert error.key == key and reason in error.reason


def test_a_blank_admd_written_is_accepted(tmp_path: Path) -> None:
    for domain in ("/C=GB/ADMD= /PRMD=Acme/", "c=GB;a= ;p=Acme", "/C=GB/A=BT/"):
        config = load_config(write(tmp_path, f'[x400]\nglobal_domain = "{domain}"\n'))
        assert config.x400.global_domain == domain
