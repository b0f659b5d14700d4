"""Shared fixtures; in CI (WAYPOST_REQUIRE_INTEROP=1) a skipped interop test is a failure."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from waypost import events

REQUIRE_INTEROP = os.environ.get("WAYPOST_REQUIRE_INTEROP") == "1"


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
