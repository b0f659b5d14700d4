"""The event catalogue and its two output forms."""

from __future__ import annotations

import ast
import io
import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path

from waypost import events


def test_catalogue_is_consistent() -> None:
    entries = list(events.catalogue())
    assert len({e.id for e in entries}) == len(entries)
    assert len({e.name for e in entries}) == len(entries)
    for e in entries:
        assert e.template and e.action, e.name
        assert e.name == e.name.lower() and " " not in e.name
        # A template renders with every field it names.
        rendered = e.render({f: f"<{f}>" for f in e.fields()})
        assert "?>" not in rendered


def test_emit_text_and_json_lines(tmp_path: Path) -> None:
    terminal = io.StringIO()
    json_file = tmp_path / "events.jsonl"
    events.configure_logging(level="INFO", json_file=str(json_file), stream=terminal)
    try:
        events.emit(events.OBJECT_QUARANTINED, kind="message", object_id=7, reason="bad index")
        events.emit(events.DELIVERED, message_id=1, recipient="a@b", next_hop="local")
    finally:
        for handler in logging.getLogger("waypost").handlers:
            handler.flush()
    lines = terminal.getvalue().splitlines()
    assert lines[0].endswith("ERROR 1201 store: Bad message 7 moved to quarantine: bad index")
    records = [json.loads(x) for x in json_file.read_text().splitlines()]
    assert records[0]["id"] == 1201 and records[0]["name"] == "object-quarantined"
    assert records[0]["category"] == "store" and records[0]["severity"] == "ERROR"
    assert records[0]["fields"] == {"kind": "message", "object_id": 7, "reason": "bad index"}
    assert records[1]["message"] == "Message 1 delivered to a@b via local"
    events.configure_logging(level="WARNING", stream=io.StringIO())


def test_level_filters_and_missing_fields_do_not_fail() -> None:
    terminal = io.StringIO()
    events.configure_logging(level="WARNING", stream=terminal)
    events.emit(events.DELIVERED, message_id=1, recipient="a@b", next_hop="local")
    events.emit(events.RECIPIENT_FAILED, message_id=1)
    out = terminal.getvalue()
    assert "delivered" not in out
    assert "Message 1 to <recipient?> failed permanently: <error?>" in out


def test_docs_list_every_event() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "events.md").read_text()
    for e in events.catalogue():
        assert f"| {e.id} | {e.name} |" in docs


# -- every emit() call against the catalogue -------------------------------------------------------

PACKAGE = Path(events.__file__).parent

# Calls whose event or fields are only known at run time, each covered by its own tests: the
# checker emits the notices that store/check/repair.py builds (test_check.py).
DYNAMIC_EMITS = {("store/check/checker.py", "emit(event, **fields)")}


@dataclass(frozen=True)
class EmitCall:
    where: str
    event: events.EventDefinition
    fields: frozenset[str]


def _event_of(node: ast.expr) -> events.EventDefinition | None:
    """The catalogue entry `events.NAME` (or `NAME` inside events.py) names, if it is one."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        name = node.attr if node.value.id == "events" else ""
    else:
        name = node.id if isinstance(node, ast.Name) else ""
    value = getattr(events, name, None) if name else None
    return value if isinstance(value, events.EventDefinition) else None


def _emit_calls() -> tuple[list[EmitCall], set[tuple[str, str]]]:
    """Every `emit(...)` call in the package: those it can read, and the dynamic ones."""
    calls: list[EmitCall] = []
    dynamic: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name != "emit":
                continue
            event = _event_of(node.args[0]) if len(node.args) == 1 else None
            if event is None or any(k.arg is None for k in node.keywords):
                dynamic.add((relative, ast.unparse(node).removeprefix("events.")))
                continue
            where = f"{relative}:{node.lineno}"
            fields = frozenset(k.arg for k in node.keywords if k.arg is not None)
            calls.append(EmitCall(where=where, event=event, fields=fields))
    return calls, dynamic


def test_every_emit_call_passes_exactly_the_fields_its_template_names() -> None:
    # emit() renders the template leniently (a missing field shows as `<name?>`) and carries
    # every keyword into the JSON line, so neither a missing nor a misspelt field would fail
    # at run time: an extra keyword would sit in the JSON, undocumented and absent from the
    # text line. So every keyword must be one of the template's fields, and every field given.
    calls, dynamic = _emit_calls()
    assert len(calls) > 50  # the walk found the package's calls
    assert dynamic == DYNAMIC_EMITS
    problems = []
    for call in calls:
        wanted = set(call.event.fields())
        if missing := wanted - call.fields:
            problems.append(f"{call.where}: {call.event.name} lacks {sorted(missing)}")
        if unknown := call.fields - wanted - set(call.event.extra):
            problems.append(f"{call.where}: {call.event.name} has unknown {sorted(unknown)}")
    assert problems == []


def test_action_texts_name_no_fields() -> None:
    # An action is printed as it is (`waypost events`, docs/events.md): a `{field}` in it
    # would reach the operator as a literal `{field}`.
    for e in events.catalogue():
        assert not [f for _, f, _, _ in string.Formatter().parse(e.action) if f], e.name


def test_every_event_is_emitted_somewhere() -> None:
    # A catalogued event that nothing emits is documented for operators who will never see it.
    calls, _ = _emit_calls()
    emitted = {call.event.id for call in calls}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            # The (event, fields) notices that the checker emits once a repair has committed.
            if isinstance(node, ast.Tuple) and len(node.elts) == 2:
                event = _event_of(node.elts[0])
                if event is not None:
                    emitted.add(event.id)
    assert {e.id for e in events.catalogue()} - emitted == set()


# -- rate-limited events ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(stream: io.StringIO, event: events.EventDefinition) -> list[str]:
    return [
        x for x in stream.getvalue().splitlines() if f" {event.id} {event.category.value}: " in x
    ]


def test_events_a_peer_repeats_are_limited_per_peer_and_summed_up() -> None:
    clock = FakeClock()
    events.limit_rate(budget=5, window=60, clock=clock)
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        for n in range(1000):
            # A new connection each time: the port changes, the peer does not.
            events.emit(events.SMTP_VIOLATION, client=f"192.0.2.1:{40000 + n}", reason="bad")
        events.emit(events.SMTP_VIOLATION, client="198.51.100.7", reason="also bad")
        # Another event from the same peer has a budget of its own.
        events.emit(events.SMTP_TIMEOUT, client="192.0.2.1:1234")
        assert len(_lines(terminal, events.SMTP_VIOLATION)) == 6
        assert len(_lines(terminal, events.SMTP_TIMEOUT)) == 1
        assert _lines(terminal, events.EVENTS_SUPPRESSED) == []
        # The window ends: the next event logged, whatever it is, brings the summary.
        clock.now += 60
        events.emit(events.OBJECT_QUARANTINED, kind="message", object_id=7, reason="bad index")
        (summary,) = _lines(terminal, events.EVENTS_SUPPRESSED)
        assert (
            "Suppressed 995 more events 1703 smtp-violation from 192.0.2.1 in the 60 s" in summary
        )
        # A new window: the peer's events are logged again.
        events.emit(events.SMTP_VIOLATION, client="192.0.2.1:9", reason="again")
        assert len(_lines(terminal, events.SMTP_VIOLATION)) == 7
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())


def test_the_summary_comes_before_the_first_event_of_the_next_window() -> None:
    clock = FakeClock()
    events.limit_rate(budget=1, window=10, clock=clock)
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        for _ in range(3):
            events.emit(
                events.X400_ASSOCIATION_ABORTED,
                peer="B-MTA (192.0.2.9:102)",
                layer="p1",
                reason="x",
            )
        events.emit(events.X400_BIND_REFUSED, client="192.0.2.9:4000", mta_name="X", reason="y")
        clock.now += 11
        # Not ended by the sweep (nothing else is pending before it): by the next such event.
        events.emit(events.X400_ASSOCIATION_ABORTED, peer="192.0.2.9:5000", layer="p1", reason="z")
        lines = terminal.getvalue().splitlines()
        assert "Suppressed 2 more events 1802 x400-association-aborted from 192.0.2.9" in lines[-2]
        assert lines[-1].endswith("P1 association with 192.0.2.9:5000 aborted in the p1 layer: z")
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())


def test_flush_suppressed_logs_what_is_pending() -> None:
    events.limit_rate(budget=1, window=3600)
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        for _ in range(4):
            events.emit(events.SMTP_AUTH_FAILED, client="::1", mechanism="PLAIN", username="u")
        events.flush_suppressed()
        (summary,) = _lines(terminal, events.EVENTS_SUPPRESSED)
        assert "Suppressed 3 more events 1708 smtp-auth-failed from ::1 " in summary
        events.flush_suppressed()
        assert len(_lines(terminal, events.EVENTS_SUPPRESSED)) == 1
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())


def test_an_event_filtered_out_by_level_uses_no_budget() -> None:
    events.limit_rate(budget=2, window=60)
    terminal = io.StringIO()
    events.configure_logging(level="WARNING", stream=terminal)
    for _ in range(10):
        events.emit(events.SMTP_RECIPIENT_REFUSED, client="192.0.2.1", recipient="x", reply="550")
    events.flush_suppressed()
    assert terminal.getvalue() == ""
    events.configure_logging(level="WARNING", stream=io.StringIO())


def test_peer_of_drops_the_port() -> None:
    assert events.peer_of("192.0.2.1:4711") == "192.0.2.1"
    assert events.peer_of("192.0.2.1") == "192.0.2.1"
    assert events.peer_of("[2001:db8::1]:4711") == "2001:db8::1"
    assert events.peer_of("::1") == "::1"
    assert events.peer_of("2001:db8::5") == "2001:db8::5"
    assert events.peer_of("::1:40001") == "::1"  # X.400's host:port with an IPv6 host
    assert events.peer_of("B-MTA (192.0.2.1:102)") == "192.0.2.1"
    assert events.peer_of("mx.example:25") == "mx.example"


def test_the_events_a_peer_can_cause_at_will_are_limited_by_a_field_they_have() -> None:
    limited = {e.name for e in events.catalogue() if e.limit_by}
    assert {"smtp-violation", "x400-association-aborted", "x400-bind-refused"} <= limited
    for e in events.catalogue():
        if e.limit_by:
            assert e.limit_by in e.fields(), e.name
