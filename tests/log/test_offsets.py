"""Committed consumer offsets: commit/fetch/delete/expire, restart, compaction, torn frames, and
concurrent committers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minikafka.log import OffsetAndMetadata, OffsetStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "offsets.log"


@pytest.fixture
def open_store(path: Path) -> Iterator[Callable[..., OffsetStore]]:
    stores: list[OffsetStore] = []

    def open_(**kwargs: object) -> OffsetStore:
        stores.append(OffsetStore(path, **kwargs))
        return stores[-1]

    yield open_
    for store in stores:
        store.close()


def om(offset: int, **kwargs: object) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, **kwargs)


def test_commit_fetch_delete(open_store: Callable[..., OffsetStore]) -> None:
    store = open_store()
    store.commit("g", {("a", 0): om(5, leader_epoch=0, metadata="m"), ("a", 1): om(7)})
    store.commit("g", {("a", 0): om(9)})
    store.commit("h", {("b", 0): om(1)})
    got = store.fetch("g")
    assert (got[("a", 0)].offset, got[("a", 1)].offset) == (9, 7)
    assert got[("a", 0)].commit_timestamp > 0
    assert store.fetch("g", [("a", 1), ("zz", 0)]) == {("a", 1): got[("a", 1)]}
    assert store.groups() == ["g", "h"]
    store.delete("g", [("a", 0)])
    assert list(store.fetch("g")) == [("a", 1)]
    store.delete("h")
    assert store.groups() == ["g"]
    assert store.fetch("nobody") == {}


def test_metadata_and_epoch_are_kept(open_store: Callable[..., OffsetStore]) -> None:
    store = open_store()
    store.commit("g", {("a", 0): om(3, leader_epoch=4, metadata="ü\n{json}", commit_timestamp=9)})
    assert store.fetch("g")[("a", 0)] == om(3, leader_epoch=4, metadata="ü\n{json}",
                                            commit_timestamp=9)


def test_delete_topic_and_expire(open_store: Callable[..., OffsetStore]) -> None:
    store = open_store()
    store.commit("g", {("a", 0): om(1, commit_timestamp=100),
                       ("b", 0): om(2, commit_timestamp=200)})
    store.commit("h", {("a", 0): om(3, commit_timestamp=300)})
    store.delete_topic("a")
    assert store.groups() == ["g"] and list(store.fetch("g")) == [("b", 0)]
    store.commit("h", {("c", 0): om(4, commit_timestamp=300)})
    assert store.expire(older_than_ms=250) == 1
    assert store.groups() == ["h"]


def test_survives_reopen(open_store: Callable[..., OffsetStore]) -> None:
    store = open_store()
    for i in range(100):
        store.commit(f"g{i % 3}", {("t", i % 4): om(i)})
    store.delete("g2", [("t", 1)])
    before = {g: store.fetch(g) for g in store.groups()}
    store.close()
    again = open_store()
    assert {g: again.fetch(g) for g in again.groups()} == before
    assert before["g0"][("t", 0)].offset == 96


def test_compaction_shrinks_the_file_and_keeps_the_latest(open_store: Callable[..., OffsetStore],
                                                          path: Path) -> None:
    store = open_store(compact_min_entries=50)
    other = open_store()  # another process's view: must follow the replaced file
    sizes = []
    for i in range(400):
        store.commit("g", {("t", i % 2): om(i)})
        sizes.append(path.stat().st_size)
    assert max(sizes) > path.stat().st_size * 5, "never compacted"
    assert {tp: o.offset for tp, o in other.fetch("g").items()} == {("t", 0): 398, ("t", 1): 399}
    other.commit("g", {("t", 2): om(1)})
    assert store.fetch("g")[("t", 2)].offset == 1
    assert not list(path.parent.glob("*.tmp"))


def test_torn_final_frame_is_ignored_then_cut(open_store: Callable[..., OffsetStore],
                                              path: Path) -> None:
    store = open_store()
    store.commit("g", {("t", 0): om(1)})
    good = path.stat().st_size
    store.commit("g", {("t", 0): om(2)})
    store.close()
    os.truncate(path, path.stat().st_size - 3)  # the second commit's frame is torn
    reader = open_store()
    assert reader.fetch("g")[("t", 0)].offset == 1
    reader.commit("g", {("t", 1): om(5)})  # the next writer cuts the torn frame first
    assert path.stat().st_size > good
    fresh = open_store()
    assert {tp: o.offset for tp, o in fresh.fetch("g").items()} == {("t", 0): 1, ("t", 1): 5}


def test_garbage_after_the_last_frame_is_cut(open_store: Callable[..., OffsetStore],
                                             path: Path) -> None:
    store = open_store()
    store.commit("g", {("t", 0): om(1)})
    store.close()
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x00\x10garbage!")
    store = open_store()
    store.commit("g", {("t", 0): om(2)})
    assert open_store().fetch("g")[("t", 0)].offset == 2


def test_two_processes_committing_concurrently_lose_nothing(spawn: Callable, tmp_path: Path,
                                                            path: Path) -> None:
    count = 3000
    workers = [spawn("commit", tmp_path, "g", topic, count) for topic in ("a", "b")]
    for worker in workers:
        worker.wait_ready()
    (tmp_path / "go").touch()
    for worker in workers:
        assert worker.finish() == 0, worker.stderr()
    store = OffsetStore(path)
    try:
        got = {tp: o.offset for tp, o in store.fetch("g").items()}
    finally:
        store.close()
    for topic in ("a", "b"):
        assert {p: got[(topic, p)] for p in range(7)} == {
            i % 7: i for i in range(count - 6, count + 1)}
        assert {p for t, p in got if t == f"{topic}-mark"} == set(range(10, count + 1, 10))
    assert path.stat().st_size < count * 2 * 60, "the committers never compacted"


def test_flush_syncs_without_fsync_per_commit(tmp_path: Path) -> None:
    store = OffsetStore(tmp_path / "offsets.log")
    store.commit("g", {("t", 0): OffsetAndMetadata(7)})
    store.flush()
    store.close()
    store.flush()  # after close: nothing to sync, no error
    assert OffsetStore(tmp_path / "offsets.log").fetch("g")[("t", 0)].offset == 7


def flip_payload_bit(raw: bytearray) -> None:
    raw[len(raw) - 3] ^= 0x01


def longer_length(raw: bytearray) -> None:
    raw[3] += 5  # the length takes in bytes of the next frame: the CRC fails


def huge_length(raw: bytearray) -> None:
    raw[0] = 0x7F  # a frame that would run past the end of the file


@pytest.mark.parametrize("damage", [flip_payload_bit, longer_length, huge_length])
def test_a_damaged_frame_in_the_middle_loses_only_its_commit(
        open_store: Callable[..., OffsetStore], path: Path, caplog: pytest.LogCaptureFixture,
        damage: Callable[[bytearray], None]) -> None:
    store = open_store()
    frames, expected = [], {}
    for i in range(40):
        start = path.stat().st_size
        group, tp = f"g{i % 3}", ("t", i % 4)
        store.commit(group, {tp: om(i)})
        frames.append((start, path.stat().st_size))
        if i != 20:  # the frame to be damaged
            expected[(group, tp)] = i
    store.close()
    start, end = frames[20]
    with open(path, "r+b") as f:
        raw = bytearray(os.pread(f.fileno(), end - start, start))
        damage(raw)
        os.pwrite(f.fileno(), raw, start)
    reader = open_store()
    got = {(g, tp): o.offset for g in reader.groups() for tp, o in reader.fetch(g).items()}
    assert got == expected  # commit 20 is lost, and only it (g2's t-0 has a later one)
    warning = next(r for r in caplog.records if r.levelname == "WARNING")
    assert str(path) in warning.message and f"position {start}" in warning.message
    reader.commit("g2", {("t", 0): om(99)})  # appended after the last frame, none cut
    again = open_store()
    assert again.fetch("g2")[("t", 0)].offset == 99
    assert again.fetch("g0")[("t", 3)].offset == 39
