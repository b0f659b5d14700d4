"""OSI stack micro-benchmark: P1 transfers between two `Association`s back to back in memory.

    .venv/bin/python bench/osi_stack.py                  # µs per transfer, best of 5 runs
    .venv/bin/python bench/osi_stack.py --profile sender # cProfile of one side

An initiator and a responder (checkpoint size 30 KiB, window 5, as
bench/x400_relay.py negotiates them) are opened once; then each transfer is
`Transfer` on the sender, the receiver's `TransferReceived`, its
`ConfirmTransfer` and the sender's `TransferConfirmed`, the bytes handed
over in memory. The time each side spends inside its `Association`
(`send`, `receive_data`, `next_event`, `data_to_send`) is counted apart:
"sender" is the initiator's, "receiver" the responder's. Both modes, a
message-sized MTS-APDU (about 1.3 KiB) and a 64 KiB one (three checkpoints,
two minor syncs acknowledged).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable

from waypost import asn1 as ber
from waypost.osi.stack import (
    NEED_DATA,
    Accept,
    Association,
    AssociationSettings,
    ConfirmTransfer,
    Event,
    Mode,
    Open,
    OpenRequest,
    Role,
    State,
    Transfer,
    TransferConfirmed,
    TransferReceived,
)

BIND = b"\xa1\x0c\x80\x0aPPTEST-MTA"
RESULT = b"\xa1\x0b\x80\x09PEERB-MTA"
SETTINGS = AssociationSettings(checkpoint_size=30, window_size=5)
SIZES = {"1.3 KiB": 1300, "64 KiB": 64 * 1024}


def apdu_of(size: int) -> bytes:
    """A message-like MTS-APDU (`A0 { 04 … }`) of about `size` octets."""
    body = bytes(i % 251 for i in range(size))
    return ber.constructed(ber.context(0), ber.encode_octets(body))


class Pair:
    """An initiator (sender) and a responder (receiver), with the time spent in each."""

    def __init__(self, mode: Mode) -> None:
        self.i = Association(role=Role.INITIATOR, mode=mode, settings=SETTINGS)
        self.r = Association(role=Role.RESPONDER, mode=mode, settings=SETTINGS)
        self.ns = {id(self.i): 0, id(self.r): 0}
        self.profiled: Association | None = None
        self.profiler: cProfile.Profile | None = None

    def _timed(self, side: Association, call: Callable[[], bytes]) -> bytes:
        if side is self.profiled and self.profiler is not None:
            self.profiler.enable()
        start = time.perf_counter_ns()
        out = call()
        self.ns[id(side)] += time.perf_counter_ns() - start
        if side is self.profiled and self.profiler is not None:
            self.profiler.disable()
        return out

    def _other(self, side: Association) -> Association:
        return self.r if side is self.i else self.i

    def _turn(self, side: Association, data: bytes, events: list[Event]) -> bytes:
        """`side` reads `data`, gives its events, and returns what it writes back."""

        def run() -> bytes:
            if data:
                side.receive_data(data)
            while (ev := side.next_event()) is not NEED_DATA:
                assert not isinstance(ev, type(NEED_DATA))
                events.append(ev)
            return side.data_to_send()

        return self._timed(side, run)

    def exchange(self, side: Association, event: Event) -> tuple[list[Event], list[Event]]:
        """`side` sends `event`; pump until quiet: (events at initiator, at responder)."""
        got: dict[int, list[Event]] = {id(self.i): [], id(self.r): []}
        wire = self._timed(side, lambda: side.send(event))
        at = self._other(side)
        while wire:
            wire = self._turn(at, wire, got[id(at)])
            at = self._other(at)
        return got[id(self.i)], got[id(self.r)]

    def open(self) -> None:
        _, revs = self.exchange(self.i, Open(bind_argument=BIND))
        assert len(revs) == 1 and isinstance(revs[0], OpenRequest)
        self.exchange(self.r, Accept(bind_result=RESULT))
        assert self.i.state is State.OPEN and self.r.state is State.OPEN
        assert (self.i.checkpoint_size, self.i.window_size) == (30, 5)

    def transfer(self, apdu: bytes) -> None:
        ievs, revs = self.exchange(self.i, Transfer(apdu=apdu))
        assert ievs == [] and revs == [TransferReceived(apdu=apdu)], (ievs, revs)
        ievs, revs = self.exchange(self.r, ConfirmTransfer())
        assert ievs == [TransferConfirmed()] and revs == [], (ievs, revs)


def run(mode: Mode, apdu: bytes, number: int) -> tuple[float, float]:
    """µs per transfer (sender, receiver) over `number` transfers on one association."""
    pair = Pair(mode)
    pair.open()
    pair.transfer(apdu)  # warm up
    pair.ns = dict.fromkeys(pair.ns, 0)
    for _ in range(number):
        pair.transfer(apdu)
    return pair.ns[id(pair.i)] / number / 1000, pair.ns[id(pair.r)] / number / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="transfers per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs (the best is shown)")
    parser.add_argument("--mode", choices=["1988", "x410", "both"], default="both")
    parser.add_argument("--size", choices=[*SIZES, "both"], default="both")
    parser.add_argument(
        "--profile", choices=["sender", "receiver"], help="cProfile that side (one run)"
    )
    parser.add_argument("--top", type=int, default=30, help="profile rows shown")
    args = parser.parse_args()
    modes = [m for m in Mode if args.mode in ("both", m.value)]
    sizes = {k: v for k, v in SIZES.items() if args.size in ("both", k)}
    print(f"Python {sys.version.split()[0]}; checkpoint 30 KiB, window 5")
    for mode in modes:
        for label, size in sizes.items():
            apdu = apdu_of(size)
            # The 64 KiB transfer is about 50 times the work: fewer of them.
            number = args.number if size < 4096 else max(1, args.number // 20)
            if args.profile:
                pair = Pair(mode)
                pair.open()
                pair.profiled = pair.i if args.profile == "sender" else pair.r
                pair.profiler = cProfile.Profile()
                for _ in range(number):
                    pair.transfer(apdu)
                print(f"--- {mode.value}, {label} ({len(apdu)} octets), {args.profile}")
                stats = pstats.Stats(pair.profiler).strip_dirs().sort_stats("tottime")
                stats.print_stats(args.top)
                continue
            best_s = best_r = float("inf")
            for _ in range(args.repeat):
                snd, rcv = run(mode, apdu, number)
                best_s, best_r = min(best_s, snd), min(best_r, rcv)
            print(
                f"{mode.value:>5} {label:>8} ({len(apdu):>5} octets): "
                f"sender {best_s:7.1f} µs  receiver {best_r:7.1f} µs per transfer"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
