"""How fast `waypost check` reads a clean MTA database (recipients per second).

    .venv/bin/python bench/check.py                # 20,000 messages of 3 recipients, best of 3
    .venv/bin/python bench/check.py --messages 100000 --dir /work

The database is built by the tests' own builder (tests/corrupt.py); the test suite
checks that such a database checks clean, this prints how fast.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import corrupt

from waypost.store.check import check_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--recipients", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build the database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        path = Path(work) / "mta.db"
        corrupt.build_database(path, args.messages, args.recipients)
        rates = []
        for _ in range(args.rounds):
            report = check_database(str(path))
            if report.fatal or report.exit_code != 0:
                sys.exit(f"the database did not check clean: {report.fatal}")
            rates.append(report.recipients / report.seconds)
            print(f"checked {report.recipients:,} recipients in {report.seconds:.2f} s")
    print(f"best: {max(rates):,.0f} recipients/s")


if __name__ == "__main__":
    main()
