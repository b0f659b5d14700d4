"""Reading a configuration file: TOML, then the schema, the checks and the routing table, every
problem a ConfigError; a loaded Config has absolute paths and lower-cased names."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import msgspec

from waypost.address import parse_domain
from waypost.config.checks import check_values
from waypost.config.convert import Problem, convert, schema_order, unknown
from waypost.config.errors import ConfigError
from waypost.config.routes import routing_errors
from waypost.config.schema import EMBEDDED, SECTIONS, Config


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a configuration file, or the embedded defaults when `path` is None.

    Raises the first ConfigError found; `check_config_file` returns them all.
    """
    config, errors = _load(path)
    if errors:
        raise errors[0]
    assert config is not None
    return config


def check_config_file(path: str | os.PathLike[str]) -> list[ConfigError]:
    """Every problem that can be found in the file; [] when it loads."""
    return _load(path)[1]


def _load(path: str | os.PathLike[str] | None) -> tuple[Config | None, list[ConfigError]]:
    if path is None:
        return _build({}, source=EMBEDDED, base=os.getcwd())
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
    problems += check_values(config)
    errors = [ConfigError(source, key, reason) for key, reason in problems]
    # The routing table checks the routes and the local domains and prefixes again, in its
    # own terms; a key already reported is not reported twice.
    reported = {error.key for error in errors}
    check_peers = _every_peer_converted(data, config)
    errors += [
        error
        for error in routing_errors(config, check_peers=check_peers)
        if error.key not in reported
    ]
    if errors:
        # In the order of the schema's keys, whichever check found them.
        return None, sorted(errors, key=lambda error: schema_order(error.key, SECTIONS))
    return _normalise(config, base), []


def _every_peer_converted(data: Mapping[str, Any], config: Config) -> bool:
    """Whether config holds every [[x400.peer]] of the file: a route naming one that did
    not convert would be reported as naming an unknown peer."""
    x400 = data.get("x400", {})
    peers = x400.get("peer", []) if isinstance(x400, dict) else None
    return isinstance(peers, list) and len(peers) == len(config.x400.peer)


def _fold_case(section: str, table: object) -> object:
    """Log levels are case-insensitive, as the names of Python's logging levels are."""
    if section == "log" and isinstance(table, dict) and isinstance(table.get("level"), str):
        return {**table, "level": table["level"].lower()}
    return table


def _normalise(config: Config, base: str) -> Config:
    """Lower-case domains; make paths absolute (data_dir against `base`)."""
    data_dir = os.path.abspath(os.path.join(base, config.server.data_dir))

    def under_data_dir(path: str) -> str:
        return os.path.abspath(os.path.join(data_dir, path))

    replace = msgspec.structs.replace
    return replace(
        config,
        server=replace(config.server, data_dir=data_dir),
        log=replace(
            config.log,
            json_file=under_data_dir(config.log.json_file) if config.log.json_file else "",
        ),
        store=replace(config.store, path=under_data_dir(config.store.path or "mta.db")),
        smtp=replace(
            config.smtp,
            tls_cert=under_data_dir(config.smtp.tls_cert) if config.smtp.tls_cert else "",
            tls_key=under_data_dir(config.smtp.tls_key) if config.smtp.tls_key else "",
            auth_users=under_data_dir(config.smtp.auth_users) if config.smtp.auth_users else "",
        ),
        local=replace(
            config.local,
            domains=tuple(parse_domain(d) for d in config.local.domains),
            maildir=under_data_dir(config.local.maildir),
            x400_store=under_data_dir(config.local.x400_store),
        ),
    )
