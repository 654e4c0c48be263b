"""`open_storage` picks the backend from a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.storage import MemoryStorage, SqliteStorage, open_storage


def test_memory_url() -> None:
    assert isinstance(open_storage("memory://"), MemoryStorage)


@pytest.mark.parametrize("form", ["url", "path"])
async def test_sqlite_url_and_plain_path(tmp_path: Path, form: str) -> None:
    path = tmp_path / "state.db"
    store = open_storage(f"sqlite://{path}" if form == "url" else str(path), synchronous="NORMAL")
    assert isinstance(store, SqliteStorage)
    assert store.path == str(path)
    async with store:
        await store.create("/a", b"1")
    assert path.exists()


@pytest.mark.parametrize("url", ["etcd://localhost:2379", "sqlite://", "mysql://x/y"])
def test_unknown_or_incomplete_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        open_storage(url)
