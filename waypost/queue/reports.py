"""Sending the reports owed, queued like any message: RFC 3464 DSNs to Internet
originators, X.411 reports to O/R originators.

A report and the mark that it was sent are written in one transaction, so a
crash never loses a report nor sends it twice. Reports are never made for
reports: their envelope has a null reverse path and NOTIFY=NEVER.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

from waypost import events
from waypost.address import is_oraddress_text
from waypost.arrival import Arrival, Source, UnroutableError
from waypost.clock import Clock
from waypost.handoff import ReportKind
from waypost.intake import Intake, record_queued
from waypost.message import Envelope, Message, new_mts_id
from waypost.smtp.dsn import Action, build_dsn, dsn_envelope, recipient_report
from waypost.store.base import (
    BadContentError,
    OwedRecipient,
    OwedReport,
    ReportOwed,
    Store,
    StoreError,
)
from waypost.x400.report_maker import RecipientFate, build_report

_KIND = {
    ReportOwed.NON_DELIVERY: (ReportKind.FAILURE, Action.FAILED),
    ReportOwed.DELIVERY: (ReportKind.SUCCESS, Action.DELIVERED),
    ReportOwed.RELAYED: (ReportKind.SUCCESS, Action.RELAYED),
}


class ReportGenerator:
    """Turns owed reports into queued DSNs; `run_once` does one pass."""

    def __init__(
        self,
        store: Store,
        intake: Intake,
        *,
        hostname: str,
        clock: Clock,
        x400_domain: str = "/C=ZZ/ADMD= /PRMD=WAYPOST/",
        poll_interval: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self.store = store
        self.intake = intake
        self.hostname = hostname
        self.clock = clock
        self.x400_domain = x400_domain
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                done = await self.run_once()
            except StoreError as exc:
                # The database is away (a failover, a full disk): the reports stay owed.
                events.emit(events.QUEUE_STORE_UNAVAILABLE, action="send reports", error=str(exc))
                done = 0
            except Exception as exc:  # the loop carries on; the reports stay owed
                events.emit(events.UNEXPECTED_ERROR, component="report generator", error=repr(exc))
                done = 0
            if done:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run_once(self) -> int:
        """Send the reports owed on up to `batch_size` recipients; returns how many."""
        owed = await self.store.reports_owed(self.batch_size)
        done = 0
        for message in owed:
            done += await self._report(message)
        return done

    async def _report(self, owed: OwedReport) -> int:
        envelope = owed.envelope
        if envelope is None:
            await self.store.quarantine_message(owed.message_id, owed.problem or "bad message")
            return 0
        try:
            content = await self.store.read_content(owed.message_id)
        except BadContentError as exc:
            await self.store.quarantine_message(owed.message_id, str(exc))
            return 0
        if is_oraddress_text(envelope.originator):
            return await self._x400_report(owed, envelope, content)
        groups: dict[ReportOwed, list[OwedRecipient]] = defaultdict(list)
        for recipient in owed.recipients:
            groups[ReportOwed(recipient.report)].append(recipient)
        done = 0
        for report, recipients in groups.items():
            kind, action = _KIND[report]
            reports = [
                recipient_report(
                    address=r.address,
                    action=action,
                    detail=r.detail,
                    orcpt=envelope.recipients[r.rcpt_index].orcpt,
                    last_attempt=r.when,
                )
                for r in recipients
            ]
            dsn = build_dsn(
                envelope=envelope,
                content=content,
                kind=kind,
                recipients=reports,
                reporting_mta=self.hostname,
                arrival=owed.received_at,
                now=self.clock.now(),
            )
            dsn_env = dsn_envelope(
                envelope, mts_id=new_mts_id(self.hostname), to=envelope.originator
            )
            message = Message(envelope=dsn_env, content=dsn)
            done += await self._queue(owed, recipients, message, kind.value)
        return done

    async def _x400_report(self, owed: OwedReport, envelope: Envelope, content: bytes) -> int:
        """One P1 report for every recipient of the message with a report owed."""
        outcomes = [
            RecipientFate(
                rcpt_index=r.rcpt_index,
                delivered=r.report != ReportOwed.NON_DELIVERY,
                detail=r.detail,
                when=r.when,
            )
            for r in owed.recipients
        ]
        report = build_report(
            subject=envelope,
            content=content,
            outcomes=outcomes,
            received_at=owed.received_at,
            domain=self.x400_domain,
            now=self.clock.now(),
        )
        failed = any(not o.delivered for o in outcomes)
        kind = "x400-non-delivery" if failed else "x400-delivery"
        return await self._queue(owed, owed.recipients, report, kind)

    async def _queue(
        self, owed: OwedReport, recipients: list[OwedRecipient], report: Message, kind: str
    ) -> int:
        """Route and enqueue `report` and mark it sent, in one transaction; returns the
        number of recipients reported on (0 when the store failed: they stay owed)."""
        to = envelope_to(report)
        ids = [r.recipient_id for r in recipients]
        new = None
        arrival = Arrival(source=Source.REPORT)
        try:
            new = self.intake.admit(report, arrival)
        except UnroutableError:
            events.emit(
                events.REPORT_UNDELIVERABLE,
                kind=kind,
                message_id=owed.message_id,
                to=to,
                reason="no route to the originator",
            )
        try:
            report_id = await self.store.complete_reports(owed.message_id, ids, new)
        except StoreError as exc:
            events.emit(events.QUEUE_STORE_UNAVAILABLE, action="record a report", error=str(exc))
            return 0
        if report_id is not None:
            self.sent += 1
            if new is not None:
                record_queued(report_id, new, arrival)
            events.emit(
                events.REPORT_QUEUED,
                kind=kind,
                message_id=owed.message_id,
                recipients=len(ids),
                report_id=report_id,
                to=to,
            )
        return len(ids)


def envelope_to(report: Message) -> str:
    """The one recipient of a report: its destination."""
    return report.envelope.recipients[0].address
