"""The web console in a real headless Chromium (Debian's, driven by Playwright) against a
real `waypost serve`: log in, watch mail to a next hop that is down pile up, hold and
release a message, and follow it in the tracking journal. Screenshots of every step go to
test-artifacts/console/."""

from __future__ import annotations

import os
import smtplib
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port
from serve_process import WAIT, ServeProcess

from waypost.smtp.auth import hash_password

pytestmark = [pytest.mark.interop, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"
PASSWORD = "s3cret operator"


def mta_config(smtp_port: int, down_port: int, console_port: int, users: Path) -> str:
    return (
        f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
        "[x400]\nlisten = []\n"
        "[queue]\npoll_interval = 0.1\n"
        f'[console]\nenabled = true\nlisten = "127.0.0.1:{console_port}"\nusers = "{users}"\n'
        f'[[route]]\nmatch = "down.example"\nnext_hop = "smtp:[127.0.0.1]:{down_port}"\n'
    )


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, int]]:
    """A running MTA: (its process, its SMTP port, its console's port)."""
    smtp_port, console_port = free_port(), free_port()
    users = tmp_path / "console-users"
    users.write_text(f"operator:{hash_password(PASSWORD)}\n")
    (tmp_path / "log").mkdir()
    serve = ServeProcess(tmp_path, mta_config(smtp_port, free_port(), console_port, users))
    serve.start()
    try:
        yield serve, smtp_port, console_port
    finally:
        serve.stop()


def console_listening(event: dict[str, Any]) -> bool:
    return bool(event["name"] == "http-listening" and event["fields"].get("service") == "console")


@pytest.fixture
def console_url(mta: tuple[ServeProcess, int, int]) -> str:
    """The address of the console `waypost serve` started."""
    serve, _, port = mta
    serve.wait_for(console_listening)
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def page() -> Iterator[Any]:
    """A page of a fresh headless Chromium (Debian's own: nothing is downloaded)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (scripts/install-system-tools.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(WAIT * 1000)
            yield tab
        finally:
            browser.close()


def send(port: int, msgid: str, subject: str) -> None:
    mail = EmailMessage()
    mail["From"] = "ann@example.org"
    mail["To"] = "bob@down.example"
    mail["Subject"] = subject
    mail["Message-ID"] = msgid
    mail.set_content("Waiting for a next hop that is down.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.send_message(mail)


def reload_until(page: Any, ready: Callable[[], bool], what: str) -> None:
    """Reload the page until `ready()` (the MTA works at its own pace)."""
    deadline = time.monotonic() + WAIT
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT} s on {page.url}")
        time.sleep(0.3)
        page.reload()


class Shots:
    """Numbered screenshots of the steps, in test-artifacts/console/."""

    def __init__(self, page: Any) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page = page
        self.count = 0

    def take(self, step: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.count:02d}-{step}.png"), full_page=True)


def test_an_operator_holds_releases_and_tracks_a_message(
    mta: tuple[ServeProcess, int, int], console_url: str, page: Any
) -> None:
    _, smtp_port, _ = mta
    shots = Shots(page)

    page.goto(f"{console_url}/queues")
    assert page.url.startswith(f"{console_url}/login")
    shots.take("login")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "Unknown user or wrong password" in page.inner_text("main")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console_url}/queues")
    assert page.inner_text("#queue-total") == "0"
    shots.take("empty-queue")

    msgid = f"<console-{os.getpid()}-{time.time_ns()}@example.org>"
    send(smtp_port, msgid, "the one to hold")
    reload_until(page, lambda: page.inner_text("#queue-total") == "1", "one message queued")
    for n in range(2):
        send(smtp_port, f"<other-{n}-{time.time_ns()}@example.org>", f"another {n}")
    reload_until(page, lambda: page.inner_text("#queue-total") == "3", "three messages queued")
    shots.take("queue-grew")

    page.click("#qshape a")  # the one next hop
    assert "bob@down.example" in page.inner_text("table.messages")
    shots.take("next-hop")
    page.click("table.messages a >> nth=0")  # the oldest message: the first sent
    page.wait_for_url(f"{console_url}/messages/*")
    assert "Subject: the one to hold" in page.inner_text("pre.headers")
    state = page.locator("#recipients td.state")
    reload_until(page, lambda: state.get_attribute("data-state") == "deferred", "deferred")
    assert "127.0.0.1" in page.inner_text("#recipients")  # the connection error
    shots.take("message-deferred")

    page.click("button[value=hold]")
    page.wait_for_url(f"{console_url}/actions/confirm*")
    assert "Hold message" in page.inner_text(".confirm-what")
    shots.take("confirm-hold")
    page.click("text=Yes, hold")
    page.wait_for_url(f"{console_url}/messages/*")
    assert page.inner_text(".flash") == "hold: 1 recipients changed"
    assert state.get_attribute("data-state") == "held"
    shots.take("held")

    page.click("button[value=release]")
    page.click("text=Yes, release")
    page.wait_for_url(f"{console_url}/messages/*")
    assert page.inner_text(".flash") == "release: 1 recipients changed"
    assert state.get_attribute("data-state") in ("queued", "leased", "deferred")
    shots.take("released")

    page.click("nav >> text=Tracking")
    page.fill("input[name=msgid]", msgid)
    page.click("form.search button")
    records = page.locator("tr.record td.kind")
    reload_until(
        page,
        lambda: {"received", "routed", "deferred"} <= set(records.all_inner_texts()),
        "received, routed and deferred in the journal",
    )
    assert msgid in page.inner_text("section.life h3")
    shots.take("tracking")

    page.click("nav >> text=Overview")
    assert page.inner_text("#message-count") == "3"
    shots.take("overview")
    page.click("nav >> text=Events")
    page.select_option("select[name=category]", "queue")
    page.click("form.filter button")
    audit = page.inner_text("table.events")
    assert "Operator operator (console) (uid -) ran hold on message ids" in audit
    assert "ran release" in audit
    shots.take("events")
