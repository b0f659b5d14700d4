"""The embedded defaults as TOML text (`waypost config defaults`)."""

from __future__ import annotations

import msgspec

from waypost.config.schema import SECTIONS, Config


def dump_defaults() -> str:
    """The embedded defaults as TOML text, paths as written (not yet resolved)."""
    lines = ["# Waypost configuration: the embedded defaults."]
    defaults = Config()
    for name in SECTIONS:
        if name == "route":
            continue
        lines += ["", f"[{name}]"]
        section = getattr(defaults, name)
        lines += [
            f"{f.name} = {toml_value(getattr(section, f.name))}" + _NOTES.get((name, f.name), "")
            for f in msgspec.structs.fields(section)
            if (name, f.name) != ("x400", "peer")  # tables of their own, none by default
        ]
    lines += [
        "",
        "# No adjacent X.400 MTAs by default: [[x400.peer]] tables with name and address add them.",
        "# No routes by default: [[route]] tables with match and next_hop add them.",
    ]
    return "\n".join(lines) + "\n"


# What an empty default stands for, where it is not "none".
_NOTES = {
    ("server", "data_dir"): "  # /var/lib/waypost as root, else $XDG_STATE_HOME/waypost",
    ("store", "path"): "  # <data_dir>/mta.db",
    ("local", "maildir"): "  # <data_dir>/maildir",
    ("local", "x400_store"): "  # <data_dir>/x400store",
    ("tracking", "path"): "  # <data_dir>/tracking.db",
    ("console", "users"): "  # <data_dir>/console-users",
}

_ESCAPES: dict[str, str] = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_value(value: object) -> str:
    """A TOML literal for the values our sections hold."""
    match value:
        case bool():
            return "true" if value else "false"
        case int():
            return str(value)
        case float():
            return repr(value)  # 300.0, 1e+16, inf and nan are all TOML
        case str():
            return '"' + "".join(_escape(char) for char in value) + '"'
        case tuple() | list():
            return "[" + ", ".join(toml_value(item) for item in value) + "]"
        case dict():
            # An inline table; its keys quoted, as an O/R address needs.
            items = (f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
            return "{" + ", ".join(items) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    # TOML forbids control characters and DEL in basic strings.
    return f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
