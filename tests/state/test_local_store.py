"""The folder store: today's file layout, oldest-first listing, and creates without hard links."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from seedance_prefect.state import LocalStateStore, StateConflict


def test_keys_are_the_files_of_today(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    store.create("journal/abc.json", b"{}")
    store.create("journal/runs/run-1/abc", b"")
    assert (tmp_path / "journal" / "abc.json").read_bytes() == b"{}"
    assert (tmp_path / "journal" / "runs" / "run-1" / "abc").is_file()
    # locks and temporary files are hidden: only the keys are listed
    store.replace("journal/abc.json", b"[]", store.read("journal/abc.json").version)  # type: ignore[union-attr]
    assert store.list() == ["journal/abc.json", "journal/runs/run-1/abc"] or set(store.list()) == {
        "journal/abc.json",
        "journal/runs/run-1/abc",
    }
    assert all(p.name.startswith(".") for p in (tmp_path / "journal").iterdir() if p.name.endswith("lock"))


def test_list_is_oldest_first_by_modification_time(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    for i, name in enumerate(["c", "a", "b"]):
        store.create(f"runs/{name}", b"")
        os.utime(tmp_path / "runs" / name, ns=(10**18 + i, 10**18 + i))
    assert store.list("runs/") == ["runs/c", "runs/a", "runs/b"]


def test_a_file_written_by_an_earlier_version_is_read_and_replaced(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    (tmp_path / "journal" / "abc.json").write_text('{"fingerprint": "abc"}')
    store = LocalStateStore(tmp_path)
    found = store.read("journal/abc.json")
    assert found is not None and found.data == b'{"fingerprint": "abc"}'
    store.replace("journal/abc.json", b"{}", found.version)
    assert (tmp_path / "journal" / "abc.json").read_bytes() == b"{}"


def test_create_without_hard_links_checks_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "hard links not supported here")

    monkeypatch.setattr(os, "link", no_links)
    store = LocalStateStore(tmp_path)
    store.create("k.json", b"first")
    with pytest.raises(StateConflict):
        store.create("k.json", b"second")
    assert store.read("k.json").data == b"first"  # type: ignore[union-attr]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
