"""Reading a configuration file: TOML, then the schema, the checks and the routing table, every
problem a ConfigError; a loaded Config has absolute paths and lower-cased names.

A relative path written in a file is relative to the directory that holds the file, never to
the directory a command runs in. The places in the data directory (the MTA database, the
Maildirs, the X.400 store) are under `server.data_dir` unless a path is given for them, and
`server.data_dir` itself has an absolute default (`default_data_dir`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import msgspec

from waypost.address import AddressError, parse_domain
from waypost.config.checks import check_values
from waypost.config.convert import Problem, convert, convert_items, schema_order, unknown
from waypost.config.errors import ConfigError
from waypost.config.routes import routing_errors
from waypost.config.schema import EMBEDDED, SECTIONS, Config, X400Config

ROOT_DATA_DIR = "/var/lib/waypost"  # systemd's StateDirectory=waypost
# The names of the places in the data directory when no path is given for them.
DATABASE_FILE, MAILDIR_ROOT, X400_STORE_ROOT = "mta.db", "maildir", "x400store"
TRACKING_FILE, CONSOLE_USERS = "tracking.db", "console-users"


def default_data_dir() -> str:
    """`server.data_dir` when none is given: /var/lib/waypost for root, else `waypost` in the
    XDG state directory ($XDG_STATE_HOME, ~/.local/state when unset); "" when there is no
    home directory to put it in."""
    if os.geteuid() == 0:
        return ROOT_DATA_DIR
    state = os.environ.get("XDG_STATE_HOME", "")
    # The XDG Base Directory specification: a relative path in the variable is invalid and
    # is ignored.
    if not os.path.isabs(state):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return ""
        state = os.path.join(home, ".local", "state")
    return os.path.join(state, "waypost")


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a configuration file, or the embedded defaults when `path` is None.

    Raises the first ConfigError found; `check_config_file` returns them all.
    """
    config, errors = read_config(path)
    if errors:
        raise errors[0]
    assert config is not None
    return config


def check_config_file(path: str | os.PathLike[str]) -> list[ConfigError]:
    """Every problem that can be found in the file; [] when it loads."""
    return read_config(path)[1]


def read_config(path: str | os.PathLike[str] | None) -> tuple[Config | None, list[ConfigError]]:
    """The configuration at `path` (None: the embedded defaults) and every problem in it.

    The Config comes back even when there are problems — a key that is bad takes its
    default, paths are made absolute all the same — so that what it names can be checked
    too (`waypost config check`); it is None only when the file cannot be read as TOML.
    """
    if path is None:
        # Every default path is absolute or under the data directory: no working directory
        # is needed (nor asked for: it may have been removed).
        return _build({}, source=EMBEDDED, base=os.sep)
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        return None, [ConfigError(source, "", f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return None, [ConfigError(source, "", f"not UTF-8 text: byte {exc.start}")]
    except RecursionError:
        return None, [ConfigError(source, "", "TOML nested too deeply")]
    except tomllib.TOMLDecodeError as exc:
        return None, [_syntax_error(source, str(exc))]
    except ValueError as exc:
        # tomllib lets int()'s own limit through, for an integer of over 4300 digits.
        return None, [ConfigError(source, "", f"TOML value not usable: {exc}")]
    return _build(data, source=source, base=os.path.dirname(os.path.abspath(source)))


def _syntax_error(source: str, message: str) -> ConfigError:
    # Python 3.11's TOMLDecodeError has the position only in its text.
    found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", message)
    if found is None:
        return ConfigError(source, "", f"TOML syntax error: {message}")
    reason, where = found.groups()
    return ConfigError(source, where, f"TOML syntax error: {reason}")


def _build(
    data: Mapping[str, Any], *, source: str, base: str
) -> tuple[Config | None, list[ConfigError]]:
    problems: list[Problem] = []
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in SECTIONS:
            what = "section" if isinstance(value, dict) else "key"
            problems.append((name, unknown(what, name, SECTIONS)))
    for name, kind in SECTIONS.items():
        if name not in data:
            continue
        if name == "route" and isinstance(data[name], dict):
            problems.append(("route", "routes are an array of tables: write [[route]]"))
            continue
        section, found = convert(_fold_case(name, data[name]), kind, name)
        problems += found
        if section is not None:
            sections[name] = section
    # What did not convert took its defaults, which are valid: the rest is checked all the same.
    config = Config(**sections, source=source)
    check_peers = _every_peer_converted(data, config)
    errors = _checked(config, problems, check_peers=check_peers)
    errors += _good_entries_of_bad_arrays(data, config, check_peers=check_peers)
    config = _normalise(config, base)
    if not config.server.data_dir:
        errors.append(
            ConfigError(source, "server.data_dir", "no default without a home directory: set it")
        )
    # In the order of the schema's keys, whichever check found them.
    return config, sorted(errors, key=lambda error: schema_order(error.key, SECTIONS))


def _checked(config: Config, problems: list[Problem], *, check_peers: bool) -> list[ConfigError]:
    """The problems found so far, the checks' and the routing table's."""
    problems = [*problems, *check_values(config)]
    errors = [ConfigError(config.source, key, reason) for key, reason in problems]
    # The routing table checks the routes and the local domains and prefixes again, in its
    # own terms; a key already reported is not reported twice.
    reported = {error.key for error in errors}
    errors += [
        error
        for error in routing_errors(config, check_peers=check_peers)
        if error.key not in reported
    ]
    return errors


# The arrays of tables: where one entry does not convert, the array takes its default (none).
_ARRAYS = {
    "route": SECTIONS["route"],
    "x400.peer": next(f.type for f in msgspec.structs.fields(X400Config) if f.name == "peer"),
}


def _good_entries_of_bad_arrays(
    data: Mapping[str, Any], config: Config, *, check_peers: bool
) -> list[ConfigError]:
    """The checks of the entries that converted in an array where another did not: one
    entry without its `name` must not hide a bad `address` in the next."""
    kept: dict[str, list[int]] = {}
    arrays: dict[str, tuple[Any, ...]] = {}
    for path, kind in _ARRAYS.items():
        raw = _raw(data, path)
        entries = convert_items(raw, kind)
        if isinstance(raw, list) and len(entries) < len(raw):
            kept[path] = [i for i, _ in entries]
            arrays[path] = tuple(entry for _, entry in entries)
    if not kept:
        return []
    replace = msgspec.structs.replace
    partial = replace(
        config,
        route=arrays.get("route", config.route),
        x400=replace(config.x400, peer=arrays.get("x400.peer", config.x400.peer)),
    )
    errors = []
    for error in _checked(partial, [], check_peers=check_peers):
        # Only what concerns those entries, under the index each has in the file.
        for path, indexes in kept.items():
            if found := re.match(rf"{re.escape(path)}\[(\d+)\]", error.key):
                key = f"{path}[{indexes[int(found.group(1))]}]" + error.key[found.end() :]
                errors.append(ConfigError(error.path, key, error.reason))
    return errors


def _raw(data: Mapping[str, Any], path: str) -> object:
    value: object = data
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _every_peer_converted(data: Mapping[str, Any], config: Config) -> bool:
    """Whether config holds every [[x400.peer]] of the file: a route naming one that did
    not convert would be reported as naming an unknown peer."""
    x400 = data.get("x400", {})
    peers = x400.get("peer", []) if isinstance(x400, dict) else None
    return isinstance(peers, list) and len(peers) == len(config.x400.peer)


def _fold_case(section: str, table: object) -> object:
    """Log levels are case-insensitive, as the names of Python's logging levels are."""
    if section != "log" or not isinstance(table, dict):
        return table
    if isinstance(table.get("level"), str):
        table = {**table, "level": table["level"].lower()}
    categories = table.get("categories")
    if isinstance(categories, dict):
        folded = {k: v.lower() if isinstance(v, str) else v for k, v in categories.items()}
        table = {**table, "categories": folded}
    return table


def _normalise(config: Config, base: str) -> Config:
    """Lower-case domains; make paths absolute: a path given against `base` (the file's
    directory), a place left at "" under the data directory."""

    def given(path: str) -> str:
        return os.path.abspath(os.path.join(base, path)) if path else ""

    data_dir = given(config.server.data_dir or default_data_dir())

    def in_data_dir(path: str, name: str) -> str:
        return given(path) if path else os.path.join(data_dir, name)

    replace = msgspec.structs.replace
    return replace(
        config,
        server=replace(config.server, data_dir=data_dir),
        log=replace(config.log, json_file=given(config.log.json_file)),
        store=replace(config.store, path=in_data_dir(config.store.path, DATABASE_FILE)),
        smtp=replace(
            config.smtp,
            tls_cert=given(config.smtp.tls_cert),
            tls_key=given(config.smtp.tls_key),
            auth_users=given(config.smtp.auth_users),
        ),
        local=replace(
            config.local,
            domains=tuple(_fold_domain(d) for d in config.local.domains),
            maildir=in_data_dir(config.local.maildir, MAILDIR_ROOT),
            x400_store=in_data_dir(config.local.x400_store, X400_STORE_ROOT),
        ),
        amhs=replace(config.amhs, register=given(config.amhs.register)),
        tracking=replace(config.tracking, path=in_data_dir(config.tracking.path, TRACKING_FILE)),
        console=replace(config.console, users=in_data_dir(config.console.users, CONSOLE_USERS)),
    )


def _fold_domain(domain: str) -> str:
    try:
        return parse_domain(domain)
    except AddressError:
        return domain  # already reported by the checks; kept as written
