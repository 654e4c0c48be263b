"""Kill -9 a process in the middle of sustained writes: every acknowledged write must survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from controlplane.storage import SqliteStorage
from tests.unit.storage.backends import take

REPO = Path(__file__).resolve().parents[3]


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.storage.crash_writer", db],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: dict[str, int] = {}
    try:
        assert proc.stdout.readline().strip() == "ready"
        # Kill once a good stream of writes has been acknowledged, while more are in flight.
        while len(acked) < 1500:
            line = proc.stdout.readline()
            assert line, "the writer died on its own"
            key, revision = line.split()
            acked[key] = int(revision)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    for line in rest.splitlines():  # printed before the kill: acknowledged too
        if line.count(" ") == 1:
            key, rev = line.split()
            acked[key] = int(rev)
    assert proc.returncode == -signal.SIGKILL

    async with SqliteStorage(db, compaction_interval=0) as store:
        current = await store.current_revision()
        assert current >= max(acked.values())
        listed = {kv.key: kv for kv in (await store.list("/registry/crash/")).items}
        for key, acked_revision in acked.items():
            assert listed[key].mod_revision == acked_revision
            assert listed[key].value == key.encode()
        watch = await store.watch("", revision=0)
        events = await take(watch, current)
        assert [e.revision for e in events] == list(range(1, current + 1))
        await watch.close()
