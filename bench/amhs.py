"""The AFTN/AMHS gateway measured: how fast it converts, each way, and how long an urgent
(SS) message takes through one Waypost while a backlog of FF messages drains ahead of it.

    .venv/bin/python bench/amhs.py [--messages 3000] [--backlog 2000] [--rounds 3]

Conversion: AFTN messages of 5 lines converted to AMHS (ATS message header, P22 IPM, XF
and CAAS addresses) and back, in this process; printed as messages/s each way.

Transit: a real Waypost with an AFTN listener and an AFTN station it sends to (both on
loopback, the station reading 1 ms per message). `--backlog` FF messages are queued, then
one more — SS in one run, FF in the other — while the queue manager is stopped (a link
that was down); then it starts. Printed per round: the last message's time from the start
to the station, and how many of the backlog the station received after it; the ratio
FF/SS is how much sooner the urgent one arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from aftn_station import Station, send
from helpers import free_port, running_service

from waypost import events
from waypost.amhs.addressing import load_register
from waypost.amhs.aftn import AFTNMessage, Deframer, Framing, decode, encode
from waypost.amhs.convert import GatewaySettings, aftn_to_amhs, amhs_to_aftn
from waypost.amhs.priority import PriorityIndicator

REGISTER = (
    "prefix,scheme,country,admd,prmd,organization\n"
    "BA,CAAS,XX,ICAO,AFTNLAND-1,BA-REGION\n"
    "BB,XF,XX,ICAO,AFTNLAND-2,\n"
)
TEXT = "\n".join(f"LINE {n} OF A TYPICAL ATS MESSAGE TEXT 0123456789 ABCDEF" for n in range(5))


def aftn(n: int, priority: PriorityIndicator = PriorityIndicator.FF) -> AFTNMessage:
    return AFTNMessage(
        priority=priority,
        addressees=("BBBBZQZX", "BBBCYTYX"),
        filing_time="041030",
        originator="BAAAFTAA",
        ohi=f"REF {n}",
        text=TEXT,
        transmission_id=f"BAA{n % 999 + 1:03d}",
    )


def conversion(count: int) -> tuple[float, float]:
    """Messages/s AFTN → AMHS (decode, convert, encode the IPM) and AMHS → AFTN."""
    settings = GatewaySettings(
        register=load_register(REGISTER),
        aftn_address="BAAAYFYX",
        global_domain="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/",
    )
    wire = [encode(aftn(n), Framing.IA5) for n in range(count)]
    started = time.perf_counter()
    converted = [aftn_to_amhs(decode(data, Framing.IA5), settings, 0.0).message for data in wire]
    inbound = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for message in converted:
        assert message is not None
        recipients = [r.address for r in message.envelope.recipients]
        back = amhs_to_aftn(message.envelope, message.content, recipients, settings, Framing.IA5)
        encode(replace(back, transmission_id="WPT001"), Framing.IA5)
    outbound = count / (time.perf_counter() - started)
    return inbound, outbound


class SlowStation(Station):
    """A station that takes a millisecond over each message: the gateway's queue backs up."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deframer = Deframer(self.framing)
        while data := await reader.read(4096):
            for raw in deframer.feed(data):
                await asyncio.sleep(0.001)
                message = decode(raw, self.framing)
                async with self.arrived:
                    self.received.append(message)
                    self.arrival_times.append(time.perf_counter())
                    self.arrived.notify_all()
        writer.close()

    def __init__(self) -> None:
        super().__init__(Framing.IA5)
        self.arrival_times: list[float] = []


async def transit(backlog: int, last: PriorityIndicator) -> tuple[float, int]:
    """The last message's transit (s), and how many of the backlog arrived after it."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "register.csv").write_text(REGISTER)
        station = SlowStation()
        station_port = await station.start()
        aftn_port = free_port()
        svc = await running_service(
            directory,
            '[server]\ndata_dir = "data"\n[smtp]\nlisten = []\n[x400]\nlisten = []\n'
            'global_domain = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/"\n'
            "[queue]\npoll_interval = 0.05\n"
            '[amhs]\nenabled = true\nregister = "register.csv"\naftn_address = "BAAAYFYX"\n'
            f'listen = ["127.0.0.1:{aftn_port}"]\n'
            f'[[amhs.peer]]\nname = "SINK"\naddress = "127.0.0.1:{station_port}"\n'
            '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/"\nnext_hop = "aftn:SINK"\n',
            background=False,  # the queue manager starts once the backlog is queued
        )
        received = [0]

        def count(*_: object) -> None:
            received[0] += 1

        unobserve = events.observe([events.AFTN_RECEIVED], count)
        try:
            await send(aftn_port, [aftn(n) for n in range(backlog)])
            # Until the whole backlog is queued (or delivered) and draining: then the last
            # one comes, on a connection of its own.
            while received[0] < backlog:
                await asyncio.sleep(0.005)
            final = replace(aftn(backlog, last), ohi="THE LAST ONE")
            await send(aftn_port, [final])
            while received[0] < backlog + 1:
                await asyncio.sleep(0.005)
            sent = time.perf_counter()  # the queue starts: the backlog and the last one wait
            svc.run_background()
            await station.wait_for(backlog + 1, timeout=600)
            index = next(i for i, m in enumerate(station.received) if m.ohi == "THE LAST ONE")
            return station.arrival_times[index] - sent, len(station.received) - index - 1
        finally:
            unobserve()
            await svc.stop()
            await station.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ins, outs, ss, ff = [], [], [], []
    for round_ in range(1, args.rounds + 1):
        inbound, outbound = conversion(args.messages)
        ins.append(inbound)
        outs.append(outbound)
        ss_time, ss_after = await transit(args.backlog, PriorityIndicator.SS)
        ff_time, ff_after = await transit(args.backlog, PriorityIndicator.FF)
        ss.append(ss_time)
        ff.append(ff_time)
        print(
            f"round {round_}: AFTN→AMHS {inbound:,.0f} msg/s, AMHS→AFTN {outbound:,.0f} msg/s; "
            f"SS transit {ss_time:.3f} s ({ss_after} of the backlog after it), "
            f"FF transit {ff_time:.3f} s ({ff_after} after it)"
        )
    print(
        f"median: AFTN→AMHS {statistics.median(ins):,.0f} msg/s, "
        f"AMHS→AFTN {statistics.median(outs):,.0f} msg/s; "
        f"SS {statistics.median(ss):.3f} s, FF {statistics.median(ff):.3f} s, "
        f"FF/SS {statistics.median(ff) / statistics.median(ss):.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
