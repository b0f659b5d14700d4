"""Soak: kill Waypost with SIGKILL under load for N minutes; nothing acknowledged may be lost.

    .venv/bin/python bench/soak.py --minutes 10 --kills 40

The same run as tests/reliability/test_kill_under_load.py (tests/reliability/harness.py),
for longer: numbered SMTP messages (smtplib, plus smtp-source background load) and X.400
messages (a sending Waypost) go through a middle Waypost M to smtp-sink and to a receiving
Waypost R. M is killed --kills times at random moments over the run, R and the smtp-sink
--other-kills times each, every one restarted. It prints the table (kills, sent,
acknowledged, delivered, duplicated, lost) and exits 1 if an acknowledged message was lost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from harness import Result, run_kill_under_load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the load")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the middle MTA")
    parser.add_argument(
        "--other-kills", type=int, default=None, help="SIGKILLs of R and of the sink (each)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="numbered SMTP messages/s")
    parser.add_argument("--x400-rate", type=float, default=10.0, help="X.400 messages/s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep it (default: tmp)")
    parser.add_argument("--no-bulk", action="store_true", help="no smtp-source background load")
    args = parser.parse_args()
    seconds = args.minutes * 60
    others = args.other_kills if args.other_kills is not None else max(1, args.kills // 5)
    victims = args.kills + 2 * others
    # The kills are spread over the run: each gap is drawn around seconds / victims, less
    # the ~1.5 s a restart takes.
    mean_gap = max(0.5, seconds / max(victims, 1) - 1.5)

    def run(root: Path) -> Result:
        return run_kill_under_load(
            root,
            seed=args.seed,
            smtp_messages=max(1, int(args.rate * seconds)),
            x400_messages=max(1, int(args.x400_rate * seconds)),
            m_kills=args.kills,
            r_kills=others,
            sink_kills=others,
            kill_gap=(mean_gap * 0.5, mean_gap * 1.5),
            x400_batch=5,
            bulk=not args.no_bulk,
            drain_timeout=max(120.0, seconds / 2),
        )

    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True, exist_ok=True)
        result = run(root)
    else:
        with tempfile.TemporaryDirectory(prefix="waypost-soak-") as tmp:
            result = run(Path(tmp))
    print(result.table())
    lost = len(result.smtp.lost) + len(result.x400.lost)
    for name, tally in (("smtp", result.smtp), ("x400", result.x400)):
        if tally.lost:
            print(f"{name} lost: {', '.join(tally.lost[:20])}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
