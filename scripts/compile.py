"""Compile the hot, pure modules with mypyc into extension modules beside their sources.

    .venv/bin/python scripts/compile.py           # build (make does it; see the Makefile)
    .venv/bin/python scripts/compile.py --clean   # remove them: Waypost runs interpreted
    .venv/bin/python scripts/compile.py --stale   # list those older than their sources
    .venv/bin/python scripts/compile.py --sources # their sources (for make)

The modules are the gateway's conversion and the BER and IPM codecs it reads and writes
with: pure functions over bytes and text, typed under `mypy --strict`, called for every
message.
Compiled, they behave as their sources do (the whole suite runs against them) and take
about 0.6 of the time. Python imports an extension module before a source of the same
name, so one older than its source would run old code: make rebuilds them when a source
changes, and the test suite refuses to start with a stale one (tests/conftest.py).
Each module is compiled on its own (mypyc's separate mode), so that its runtime library
lies in the package beside it rather than at the top level, where an installed Waypost
would not find it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = (
    "waypost/asn1/decoder.py",
    "waypost/asn1/encoder.py",
    "waypost/asn1/scan.py",
    "waypost/mixer/bodies.py",
    "waypost/mixer/convert.py",
    "waypost/mixer/header_fields.py",
    "waypost/mixer/header_text.py",
    "waypost/mixer/heading.py",
    "waypost/mixer/message_ids.py",
    "waypost/mixer/mime_reader.py",
    "waypost/x400/ipm_bodies_ber.py",
    "waypost/x400/ipm_codec.py",
    "waypost/x400/ipm_heading_ber.py",
    "waypost/x400/ipm_heading_fast.py",
)
BUILD = REPO / ".venv" / "mypyc-build"


def built(source: Path) -> list[Path]:
    """The extension modules (and their runtime libraries) built from one source."""
    return sorted(source.parent.glob(f"{source.stem}.*.so")) + sorted(
        source.parent.glob(f"{source.stem}__mypyc.*.so")
    )


def stale() -> list[str]:
    """The compiled modules older than their sources."""
    found = []
    for name in MODULES:
        source = REPO / name
        if any(so.stat().st_mtime < source.stat().st_mtime for so in built(source)):
            found.append(name)
    return found


def clean() -> None:
    for name in MODULES:
        for so in built(REPO / name):
            so.unlink()


def build() -> None:
    from mypyc.build import mypycify  # noqa: PLC0415 (only for building)
    from setuptools import setup  # noqa: PLC0415

    os.chdir(REPO)
    clean()
    extensions = mypycify(list(MODULES), separate=True, target_dir=str(BUILD / "c"))
    setup(
        packages=[],  # the extension modules only: the package itself is pip's
        py_modules=[],
        ext_modules=extensions,
        script_args=["-q", "build_ext", "--inplace", "--build-temp", str(BUILD / "temp")],
    )
    # build_ext copies a library it did not need to rebuild with its old time: it is
    # what the source makes now, so it is dated now (for `stale`).
    for name in MODULES:
        for so in built(REPO / name):
            os.utime(so)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--stale", action="store_true", help="list the stale ones (exit 1)")
    parser.add_argument("--sources", action="store_true", help="list the modules' sources")
    args = parser.parse_args()
    if args.sources:
        print(" ".join(MODULES))
        return 0
    if args.stale:
        old = stale()
        print("\n".join(old))
        return 1 if old else 0
    if args.clean:
        clean()
        return 0
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
