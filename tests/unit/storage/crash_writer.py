"""Crash-test helper: create keys as fast as possible and print each acknowledged `key revision`.

Run as `python -m tests.unit.storage.crash_writer DB_PATH`; the test kills it with SIGKILL and
checks that every line it printed is in the database."""

from __future__ import annotations

import asyncio
import sys

from controlplane.storage import SqliteStorage


async def main(path: str) -> None:
    store = SqliteStorage(path, compaction_interval=0)
    await store.start()
    print("ready", flush=True)

    async def worker(n: int) -> None:
        i = 0
        while True:
            key = f"/registry/crash/w{n}-{i}"
            kv = await store.create(key, key.encode())
            print(key, kv.mod_revision, flush=True)  # only after the create was acknowledged
            i += 1

    await asyncio.gather(*(worker(n) for n in range(16)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
