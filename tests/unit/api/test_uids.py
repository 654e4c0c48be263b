"""Block-read UUIDs: valid version 4, never repeated, and a forked child draws its own."""

from __future__ import annotations

import os
import uuid

from controlplane.api import uids


def test_version_4_rfc_4122_and_unique_across_blocks() -> None:
    drawn = [uids.uuid4() for _ in range(2_000)]  # ~8 blocks of 256
    assert len(set(drawn)) == len(drawn)
    for text in drawn:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_forked_child_does_not_reuse_the_parents_pool() -> None:
    uids.uuid4()  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, uids.uuid4().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != uids.uuid4()
