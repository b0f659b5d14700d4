"""Fuzz the P22/P772 IPM summariser (what `queue show` and delivery read of a content).
Only BERError (a ValueError) may come out."""

from __future__ import annotations

from common import instrumented, run

with instrumented():
    from waypost.asn1 import BERError
    from waypost.x400.ipm import summarize_ipm


def test_one_input(data: bytes) -> None:
    try:
        summary = summarize_ipm(data)
    except BERError:
        return
    repr(summary)


if __name__ == "__main__":
    run(test_one_input)
