"""P1 codec micro-benchmark: the MTS-APDU that bench/x400_relay.py relays, encoded and decoded.

    .venv/bin/python bench/p1_codec.py                 # µs per operation, best of 5 runs
    .venv/bin/python bench/p1_codec.py --profile       # cProfile of each operation

The messages are the relay bench's: 1 KiB P22 IPMs from /C=GB/ADMD= /PRMD=A/S=Sender/
to one O/R address of B, as A's queue holds them (trace of A's domain added on
encoding), each with its own MTS identifier and arrival time; each run cycles
through --distinct of them, so that nothing per message is served from a cache.
Timed apart:

* encode (A): `encode_stored` of the stored envelope, as the x400 delivery agent
  sends it (`outbound._apdu`);
* decode (B): `decode_object` of the MTS-APDU, as B's association receives it;
* store (B): `encode_stored` of the received envelope with B's domain, as the
  local X.400 store writes it (without the file write).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from x400_relay import x400_message

from waypost.x400.p1_objects import add_trace, decode_object, encode_stored

DOMAIN_A = "/C=GB/ADMD= /PRMD=A/"
DOMAIN_B = "/C=GB/ADMD= /PRMD=B/"


def operations(distinct: int) -> dict[str, Callable[[], object]]:
    stored, apdus, received = [], [], []
    for i in range(distinct):
        message = x400_message(i).message
        envelope = msgspec.structs.replace(message.envelope, arrival=1.8e9 + i * 0.37)
        apdu = encode_stored(envelope, message.content, domain=DOMAIN_A)
        got, body = decode_object(apdu)
        stored.append((envelope, message.content))
        apdus.append(apdu)
        received.append((add_trace(got, DOMAIN_B, 1.8e9 + i * 0.41), body))
    encode_next = itertools.cycle(stored).__next__
    decode_next = itertools.cycle(apdus).__next__
    store_next = itertools.cycle(received).__next__
    return {
        "encode (A)": lambda: encode_stored(*encode_next(), domain=DOMAIN_A),
        "decode (B)": lambda: decode_object(decode_next()),
        "store (B)": lambda: encode_stored(*store_next(), domain=DOMAIN_B),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="operations per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs (the best is shown)")
    parser.add_argument("--distinct", type=int, default=500, help="messages to cycle through")
    parser.add_argument("--profile", action="store_true", help="cProfile each operation")
    args = parser.parse_args()
    ops = operations(args.distinct)
    first = x400_message(0).message
    apdu = encode_stored(first.envelope, first.content, domain=DOMAIN_A)
    print(f"MTS-APDU of {len(apdu)} bytes; Python {sys.version.split()[0]}")
    for name, op in ops.items():
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.number):
                op()
            profiler.disable()
            print(f"--- {name}")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            continue
        best = min(timeit.repeat(op, number=args.number, repeat=args.repeat))
        print(f"{name:<12} {best / args.number * 1e6:8.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
