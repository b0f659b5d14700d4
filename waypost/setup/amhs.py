"""Building the AMHS pieces from the configuration: the register of AMHS management domains
([amhs] register), read once and checked row by row."""

from __future__ import annotations

from waypost.amhs.addressing import AddressingError, Register, load_register
from waypost.config import Config


def build_register(config: Config) -> tuple[Register | None, list[tuple[str, str]]]:
    """The register [amhs] names (None when it names none), and (key, reason) for a file
    that cannot be used: what `serve` refuses to start on and `waypost config check`
    reports."""
    path = config.amhs.register
    if not path:
        return None, []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [("amhs.register", f"cannot read {path}: {reason}")]
    try:
        return load_register(text, name=path), []
    except AddressingError as exc:
        return None, [("amhs.register", str(exc))]


def amhs_problems(config: Config) -> list[tuple[str, str]]:
    """(key, reason) for the AMHS files the configuration names."""
    return build_register(config)[1]
