"""Shared fixtures; in CI (WAYPOST_REQUIRE_INTEROP=1) a skipped interop test is a failure."""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Generator
from pathlib import Path
from types import ModuleType

import pytest
from pg_server import PgServer, pg_bin
from store_backends import BACKENDS, Backend

from waypost import events

REQUIRE_INTEROP = os.environ.get("WAYPOST_REQUIRE_INTEROP") == "1"
# CI builds the compiled modules (scripts/compile.py) and runs the suite against them.
REQUIRE_COMPILED = os.environ.get("WAYPOST_REQUIRE_COMPILED") == "1"


def compile_script() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "scripts" / "compile.py"
    spec = importlib.util.spec_from_file_location("waypostcompile_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_sessionstart(session: pytest.Session) -> None:
    """Python imports a compiled module before its source: one older than its source
    would test old code. Refuse to start then (and, in CI, without them)."""
    compiled = compile_script()
    stale = compiled.stale()
    if stale:
        pytest.exit(f"compiled modules older than their sources: {stale}; run `make unit`", 2)
    if REQUIRE_COMPILED:
        missing = [m for m in compiled.MODULES if not compiled.built(compiled.REPO / m)]
        if missing:
            pytest.exit(f"WAYPOST_REQUIRE_COMPILED=1 but not compiled: {missing}", 2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    skipped = report.skipped and not hasattr(report, "wasxfail")
    if REQUIRE_INTEROP and skipped and item.get_closest_marker("interop"):
        report.outcome = "failed"
        report.longrepr = (
            f"interop test {item.nodeid} was skipped, which WAYPOST_REQUIRE_INTEROP=1 forbids: "
            f"{report.longrepr}"
        )


@pytest.fixture(autouse=True)
def _fresh_event_budgets() -> None:
    """Each test starts with every peer's budget of rate-limited events whole: most tests
    speak from 127.0.0.1, and one test's events must not use up the next one's."""
    events.limit_rate()


@pytest.fixture(scope="session")
def pg_server() -> Generator[PgServer, None, None]:
    """One private PostgreSQL server for the whole run (each test takes a database of its
    own from it: see pg_dsn). Without PostgreSQL installed the tests that need it are
    skipped, and in CI fail."""
    if pg_bin() is None:
        if REQUIRE_INTEROP:
            pytest.fail("PostgreSQL is not installed (scripts/install-system-tools.sh)")
        pytest.skip("PostgreSQL is not installed")
    server = PgServer.initdb()
    yield server
    server.remove()


_databases = itertools.count(1)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """The connection string of a new, empty database on the test run's server."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each MTA database in turn, on a database of the test's own."""
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "mta.db"))
    return Backend("postgresql", request.getfixturevalue("pg_dsn"))
