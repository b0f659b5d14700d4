"""Enqueues messages forever from many producers, printing each MTS id once its enqueue returned.

Run by the crash tests, which kill it with SIGKILL at a random moment.
"""

from __future__ import annotations

import asyncio
import sys

from waypost.message import Envelope, Message, Recipient, new_mts_id
from waypost.nexthop import LOCAL
from waypost.store import NewMessage, SQLiteStore


async def main(path: str, producers: int) -> None:
    store = await SQLiteStore.open(path)
    out = sys.stdout

    async def produce(p: int) -> None:
        n = 0
        while True:
            mts_id = new_mts_id(f"p{p}.test")
            envelope = Envelope(
                mts_id=mts_id,
                originator="a@test",
                recipients=[Recipient(address=f"u{n}@localhost")],
            )
            await store.enqueue(
                NewMessage(
                    message=Message(envelope=envelope, content=b"x" * 1024), next_hops=[LOCAL]
                )
            )
            out.write(mts_id + "\n")
            out.flush()
            n += 1

    await asyncio.gather(*(produce(p) for p in range(producers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
