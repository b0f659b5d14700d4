"""The driver the harnesses share: atheris (libFuzzer) when installed, else plain random.

    python fuzz/fuzz_ber.py -max_total_time=60 CORPUS_DIR [more libFuzzer flags]

With atheris every libFuzzer flag works, and CORPUS_DIR is read for seeds and grows.
Without it (`pip install -e '.[fuzz]'` could not build, say) the fallback runs each seed in
CORPUS_DIR, then random inputs and mutations of the seeds for -max_total_time seconds
(-runs=N stops after N inputs; -seed=N fixes the random generator), and prints the count.
A failing input is written to `crash-<sha1>` (or -artifact_prefix) before the error is raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    import atheris
except ImportError:  # the plain-random fallback below
    atheris = None

Harness = Callable[[bytes], None]


def instrumented() -> object:
    """A context manager for the harness's imports: atheris instruments them for coverage."""
    if atheris is not None:
        return atheris.instrument_imports()
    return contextlib.nullcontext()


def run(test_one_input: Harness) -> None:
    if atheris is not None:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    else:
        _fallback(test_one_input, sys.argv[1:])


def _flags(argv: list[str]) -> tuple[dict[str, str], list[Path]]:
    flags: dict[str, str] = {}
    dirs: list[Path] = []
    for arg in argv:
        if arg.startswith("-") and "=" in arg:
            name, _, value = arg.lstrip("-").partition("=")
            flags[name] = value
        elif not arg.startswith("-"):
            dirs.append(Path(arg))
    return flags, dirs


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        what = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if what == 0 and out:  # flip a bit
            at = min(at, len(out) - 1)
            out[at] ^= 1 << rng.randrange(8)
        elif what == 1 and out:  # an interesting byte
            at = min(at, len(out) - 1)
            out[at] = rng.choice((0x00, 0x7F, 0x80, 0x81, 0x84, 0xFF, 0x30, 0xA0, 0x1F))
        elif what == 2:  # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif what == 3 and out:  # delete a run
            del out[at : at + rng.randint(1, 16)]
        elif what == 4 and out:  # duplicate a run
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)]
        else:  # truncate
            del out[at:]
    return bytes(out)


def _fallback(test_one_input: Harness, argv: list[str]) -> None:
    flags, dirs = _flags(argv)
    limit = float(flags.get("max_total_time", "60"))
    runs = int(flags.get("runs", "-1"))
    rng = random.Random(int(flags["seed"]) if "seed" in flags else None)
    prefix = flags.get("artifact_prefix", "./")
    seeds = [p.read_bytes() for d in dirs if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]
    print(f"plain-random driver (atheris not installed): {len(seeds)} seeds", flush=True)
    done, start = 0, time.monotonic()

    def one(data: bytes) -> None:
        try:
            test_one_input(data)
        except BaseException:
            name = f"{prefix}crash-{hashlib.sha1(data).hexdigest()}"
            Path(name).write_bytes(data)
            print(f"failing input written to {name}", file=sys.stderr)
            raise

    for seed in seeds:
        one(seed)
        done += 1
    while (runs < 0 or done < runs) and time.monotonic() - start < limit:
        if seeds and rng.random() < 0.8:
            data = _mutate(rng, rng.choice(seeds))
        else:
            data = rng.randbytes(rng.randint(0, 512))
        one(data)
        done += 1
    elapsed = time.monotonic() - start
    print(f"Done {done} runs in {elapsed:.0f} second(s) (plain-random driver)", flush=True)
