"""The modules scripts/compile.py compiles with mypyc: what CI runs, and the staleness check
that keeps an old extension module from shadowing a newer source."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_COMPILED, compile_script

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0].lstrip(".")


def test_ci_imports_the_compiled_modules() -> None:
    if not REQUIRE_COMPILED:
        pytest.skip("WAYPOST_REQUIRE_COMPILED=1 (CI) builds and requires them")
    compiled = compile_script()
    for name in compiled.MODULES:
        module = importlib.import_module(name.removesuffix(".py").replace("/", "."))
        assert module.__file__ is not None and module.__file__.endswith(".so"), name


def test_an_extension_older_than_its_source_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = compile_script()
    monkeypatch.setattr(compiled, "REPO", tmp_path)
    monkeypatch.setattr(compiled, "MODULES", ("pkg/fresh.py", "pkg/old.py", "pkg/plain.py"))
    (tmp_path / "pkg").mkdir()
    for stem in ("fresh", "old", "plain"):
        (tmp_path / "pkg" / f"{stem}.py").write_text("x = 1\n")
    for stem in ("fresh", "old"):
        for so in (f"{stem}.{SUFFIX}", f"{stem}__mypyc.{SUFFIX}"):
            (tmp_path / "pkg" / so).write_bytes(b"")
    source = tmp_path / "pkg" / "old.py"
    later = source.stat().st_mtime + 10
    os.utime(source, (later, later))  # edited after its extension was built
    assert compiled.stale() == ["pkg/old.py"]
    compiled.clean()
    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == [
        "fresh.py",
        "old.py",
        "plain.py",
    ]
    assert compiled.stale() == []
