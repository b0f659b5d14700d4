"""The AFTN/AMHS gateway end to end, over real sockets (EUR Doc 020 Appendix D's CT5xx and
CT4xx shape): an AFTN station sends SS, FF and GG messages into Waypost A's AFTN port; A
converts them to AMHS messages (ATS message header, envelope priority, CAAS and XF O/R
addresses) and transfers them over P1 to Waypost B — tshark decodes that association — and
B's gateway sends them on to an AFTN switch as AFTN messages whose priority, filing time,
originator, addressees, optional heading information and text are those sent."""

from __future__ import annotations

from pathlib import Path

from aftn_station import Station, send
from helpers import free_port, running_service
from test_cli import waypost
from test_x400_tshark import Captured, RecordingRelay, descendants, pdml, shows

from waypost.amhs.aftn import AFTNMessage, Framing
from waypost.amhs.priority import PriorityIndicator
from waypost.service import Service
from waypost.tracking.ats_record import find_ats

REGISTER = (
    "prefix,scheme,country,admd,prmd,organization\n"
    "BA,CAAS,XX,ICAO,AFTNLAND-1,BA-REGION\n"
    "BB,XF,XX,ICAO,AFTNLAND-2,\n"
)
PEERS = 'our_password = "secret-{me}"\npeer_password = "secret-{them}"\n'


def config(name: str, register: Path, aftn_port: int, x400_port: int, extra: str) -> str:
    return (
        f'[server]\nhostname = "{name}.test"\ndata_dir = "{name}"\n'
        "[queue]\npoll_interval = 0.05\n"
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "{name.upper()}-MTA"\n'
        f'global_domain = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-{1 if name == "a" else 2}/"\n'
        f'[amhs]\nenabled = true\nregister = "{register}"\n'
        f'aftn_address = "{"BAAAYFYX" if name == "a" else "BBBBYFYX"}"\n'
        f'listen = ["127.0.0.1:{aftn_port}"]\n' + extra
    )


def sent_messages() -> list[AFTNMessage]:
    return [
        AFTNMessage(
            priority=priority,
            addressees=("BBBBZQZX", "BBBCYTYX"),
            filing_time=f"0410{n}0",
            originator="BAAAFTAA",
            ohi=f"CT501 {priority}",
            text=f"TEST MESSAGE {n} OF PRIORITY {priority}\nSECOND LINE (END)",
            transmission_id=f"BAA00{n}",
        )
        for n, priority in enumerate(
            (PriorityIndicator.GG, PriorityIndicator.FF, PriorityIndicator.SS), 1
        )
    ]


async def test_aftn_to_amhs_over_p1_and_back_to_aftn(tmp_path: Path) -> None:
    register = tmp_path / "register.csv"
    register.write_text(REGISTER)
    switch = Station(Framing.ITA2)  # B's AFTN side speaks the other framing
    switch_port = await switch.start()
    originators = Station(Framing.IA5)  # where A sends service messages to AFTNLAND-1
    originators_port = await originators.start()
    b_port, a_aftn, a_port = free_port(), free_port(), free_port()
    relay = RecordingRelay(b_port)
    relay_port = await relay.start()
    services: list[Service] = []
    try:
        b = await running_service(
            tmp_path,
            config(
                "b",
                register,
                free_port(),
                b_port,
                '[[amhs.peer]]\nname = "B-SWITCH"\n'
                f'address = "127.0.0.1:{switch_port}"\nframing = "ita2"\n'
                '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/"\n'
                'next_hop = "aftn:B-SWITCH"\n'
                # An AFTN address B's switch does not serve: its messages fail, reported.
                '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBNONE/"\n'
                'next_hop = "error:5.1.1 no such AFTN station"\n'
                '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/"\nnext_hop = "x400:A-MTA"\n'
                f'[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:{a_port}"\n'
                'our_name = "B-MTA"\n' + PEERS.format(me="b", them="a"),
            ),
            name="b",
        )
        services.append(b)
        a = await running_service(
            tmp_path,
            config(
                "a",
                register,
                a_aftn,
                a_port,
                '[[amhs.peer]]\nname = "A-STATION"\n'
                f'address = "127.0.0.1:{originators_port}"\n'
                '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/"\nnext_hop = "x400:B-MTA"\n'
                '[[route]]\nmatch = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/"\n'
                'next_hop = "aftn:A-STATION"\n'
                f'[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:{relay_port}"\n'
                'our_name = "A-MTA"\n' + PEERS.format(me="a", them="b"),
            ),
            name="a",
        )
        services.insert(0, a)
        messages = sent_messages()
        unknown = AFTNMessage(
            priority=PriorityIndicator.FF,
            addressees=("BBBBZQZX", "KJFKZTZX"),
            filing_time="041040",
            originator="BAAAFTAA",
            text="TO A KNOWN AND AN UNKNOWN ADDRESSEE",
            transmission_id="BAA004",
        )
        missing = AFTNMessage(
            priority=PriorityIndicator.DD,
            addressees=("BBBBNONE",),
            filing_time="041050",
            originator="BAAAFTAA",
            text="TO AN ADDRESS NO STATION SERVES",
            transmission_id="BAA005",
        )
        await send(a_aftn, [*messages, unknown, missing])
        out = await switch.wait_for(4)
        # Service messages to the originator: from A's gateway for the addressee no AMHS
        # domain holds; and, for the one B refused, from B's non-delivery report that
        # came back to A over P1 and left A's gateway as AFTN.
        services_sent = {m.text.splitlines()[0]: m for m in await originators.wait_for(2)}
        service = services_sent["SVC ADS 041040 BAAAFTAA"]
        reported = services_sent["SVC ADS 041050 BAAAFTAA"]
        while services:
            await services.pop(0).stop()
    finally:
        for svc in services:
            await svc.stop()
        await relay.close()
        await switch.close()
        await originators.close()

    # What leaves B's gateway is what entered A's, in the fields that must survive.
    by_time = {m.filing_time: m for m in out}
    for sent in messages:
        got = by_time[sent.filing_time]
        assert (got.priority, got.originator, got.addressees, got.ohi, got.text) == (
            sent.priority,
            sent.originator,
            sent.addressees,
            sent.ohi,
            sent.text,
        )
        assert got.transmission_id.startswith("WPT")  # B's channel to its switch
    assert by_time["041040"].addressees == ("BBBBZQZX",)
    assert service.addressees == ("BAAAFTAA",) and service.originator == "BAAAYFYX"
    assert service.text.splitlines() == [
        "SVC ADS 041040 BAAAFTAA",
        "FF BBBBZQZX KJFKZTZX",
        "UNKNOWN KJFKZTZX",
    ]
    assert reported.priority is PriorityIndicator.DD
    assert reported.text.splitlines() == [
        "SVC ADS 041050 BAAAFTAA",
        "DD BBBBNONE",
        "UNKNOWN BBBBNONE",
    ]

    # tshark reads the P1 transfers: the envelope priority each indicator maps to, the
    # XF recipients and the CAAS originator, and the ATS message header in the text.
    packets = []
    for n, conn in enumerate(relay.connections):
        pcap = conn.capture(b_port, 65495).write(tmp_path / f"amhs-{n}.pcap")
        sent_c = b"".join(d for _, fc, d in conn.events if fc)
        sent_s = b"".join(d for _, fc, d in conn.events if not fc)
        root = pdml(Captured(pcap, b_port, sent_c, sent_s, conn))
        packets += [p for p in root.iter("packet") if any(descendants(p, "p1.message_element"))]
    seen: dict[str, list[str]] = {}
    for packet in packets:
        (envelope,) = descendants(packet, "p1.envelope_element")
        (text,) = shows(packet, "p22.ia5text.data") or [""]
        # (tshark shows the line ends as spaces)
        header = " ".join(text.split()[:6])
        seen[header] = shows(envelope, "p1.priority")
        recipients = list(descendants(envelope, "p1.recipient_name_element"))
        organizations = [s for r in recipients for s in shows(r, "p1.organization_name")]
        assert organizations in (["AFTN"], ["AFTN", "AFTN"])  # XF: O=AFTN
        (originator,) = descendants(envelope, "p1.originator_name_element")
        assert shows(originator, "p1.organization_name") == ["BA-REGION"]
    # X.411 Priority: normal 0, non-urgent 1, urgent 2; normal is left out (its default).
    assert seen == {
        "PRI: GG FT: 041010 OHI: CT501": ["1"],
        "PRI: FF FT: 041020 OHI: CT501": [],
        "PRI: SS FT: 041030 OHI: CT501": ["2"],
        "PRI: FF FT: 041040 OHI: TO": [],  # no OHI: the text follows
        "PRI: DD FT: 041050 OHI: TO": [],
    }

    # The ATS record (legal recording): each side kept every ATS message it transferred,
    # whole, and `waypost track --ats` finds them.
    a_record = find_ats(tmp_path / "a" / "ats-record.db", limit=1000)
    b_record = find_ats(tmp_path / "b" / "ats-record.db", limit=1000)
    received = [r for r in a_record if r.direction == "in" and r.channel.startswith("aftn:")]
    assert sorted(r.transmission_id or "" for r in received) == [f"BAA00{n}" for n in range(1, 6)]
    assert {r.text for r in received} >= {m.text for m in messages}
    transferred = [r for r in a_record if r.direction == "out" and r.channel == "x400:B-MTA"]
    assert sorted(r.filing_time for r in transferred) == [
        "041010", "041020", "041030", "041040", "041050"
    ]  # fmt: skip
    # (the P1 peer as it bound, and its address)
    assert len([r for r in b_record if r.channel.startswith("x400:A-MTA (127.0.0.1:")]) == 5
    sent = [r for r in b_record if r.direction == "out" and r.channel == "aftn:B-SWITCH"]
    assert sorted((r.priority, r.filing_time) for r in sent) == [
        ("FF", "041020"), ("FF", "041040"), ("GG", "041010"), ("SS", "041030")
    ]  # fmt: skip
    shown = waypost(
        "track", "--ats", "--aftn", "BBBCYTYX", "-c", str(tmp_path / "b.toml"), cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("out aftn:B-SWITCH") == 3  # the three sent to both addressees
    assert "  GG BBBBZQZX BBBCYTYX\n  041010 BAAAFTAA CT501 GG\n" in shown.stdout
