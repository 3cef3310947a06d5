"""Recovery on open: a torn, corrupt or garbage tail is cut (never served), indexes are rebuilt.

Two kinds of crash leave different damage, and the partition trusts different things after each:
- a process crash (same boot): everything published in `partition.lock` is in the page cache and
  sound; only bytes past the published size (a writer that died mid-append) can be bad;
- an OS crash (the boot id in `partition.lock` differs): only what was flushed up to the recovery
  point is trusted; anything after it may be torn, flipped or zero-filled.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from logkit import make_batch, payload_id, published_state, read_records, rewrite_boot_id

from minikafka.errors import CorruptRecordError
from minikafka.log import LogManager, Partition
from minikafka.records import decode_batch, iter_batches, validate_batch

RECENT_MS = int(time.time() * 1000) - 60_000  # recent: retention (7 days) keeps it
OpenLog = Callable[..., LogManager]
BATCHES, PER_BATCH = 12, 10


def write_log(open_log: OpenLog, *, flush: bool = False, **config: object) -> Path:
    """A closed log of 12 batches x 10 records (ids r:0..119) over several segments."""
    log = open_log()
    log.create_topic("t", 1, {"segment.bytes": 5000, "index.interval.bytes": 1000, **config})
    part = log.partition("t", 0)
    for i in range(BATCHES):
        part.append(make_batch(PER_BATCH, start=i * PER_BATCH, timestamp=RECENT_MS + i))
    if flush:
        part.flush()
    log.close()
    return log.data_dir / "t-0"


def segment_files(pdir: Path, suffix: str = ".log") -> list[Path]:
    return sorted(pdir.glob(f"*{suffix}"))


def batch_spans(path: Path) -> list[tuple[int, int]]:
    """(position, size) of each batch in a segment file."""
    return [(pos, h.size) for pos, h in iter_batches(path.read_bytes())]


def assert_log_holds(part: Partition, count: int) -> None:
    """Exactly records r:0..count-1 at offsets 0..count-1, served as whole valid batches."""
    records = read_records(part)
    assert [r.offset for r in records] == list(range(count))
    assert [payload_id(r.value) for r in records] == [f"r:{i:08d}" for i in range(count)]
    assert part.log_end_offset == part.high_watermark == count


def reopen_and_check(open_log: OpenLog, count: int) -> Partition:
    """Reopen, check the log, append once more, and check a second reopen changes nothing."""
    part = open_log().partition("t", 0)
    assert_log_holds(part, count)
    assert part.append(make_batch(1, start=count)).base_offset == count
    assert_log_holds(part, count + 1)
    again = open_log().partition("t", 0)
    assert again.recovered_bytes == 0
    assert_log_holds(again, count + 1)
    return part


# --- a process crash: damage past the published size ----------------------------------------


def next_batch(count: int = PER_BATCH) -> bytearray:
    """The batch a dying writer was appending: offsets already assigned, as on disk."""
    raw = bytearray(make_batch(count, start=BATCHES * PER_BATCH))
    struct.pack_into(">q", raw, 0, BATCHES * PER_BATCH)
    return raw


def torn(raw: bytearray) -> bytes:
    return bytes(raw[: len(raw) // 2])


def flipped(raw: bytearray) -> bytes:
    raw[len(raw) - 7] ^= 0x10
    return bytes(raw)


def garbage(_raw: bytearray) -> bytes:
    return os.urandom(3000)


def zeros(_raw: bytearray) -> bytes:
    return bytes(4096)


def header_only(raw: bytearray) -> bytes:
    return bytes(raw[:61])


@pytest.mark.parametrize("damage", [torn, flipped, garbage, zeros, header_only])
def test_process_crash_mid_append_is_cut(open_log: OpenLog, damage: Callable) -> None:
    pdir = write_log(open_log)
    tail = segment_files(pdir)[-1]
    good_size = tail.stat().st_size
    with open(tail, "ab") as f:
        f.write(damage(next_batch()))
    log = open_log()
    assert log.partition("t", 0).recovered_bytes > 0
    assert tail.stat().st_size == good_size
    log.close()
    reopen_and_check(open_log, BATCHES * PER_BATCH)


def test_process_crash_after_a_whole_unpublished_batch_keeps_it(open_log: OpenLog) -> None:
    pdir = write_log(open_log)
    with open(segment_files(pdir)[-1], "ab") as f:
        f.write(next_batch())  # written in full, but its writer died before publishing it
    reopen_and_check(open_log, (BATCHES + 1) * PER_BATCH)


def test_batch_with_the_wrong_base_offset_is_not_adopted(open_log: OpenLog) -> None:
    pdir = write_log(open_log)
    stray = next_batch()
    struct.pack_into(">q", stray, 0, 5)  # not the next offset: not ours
    with open(segment_files(pdir)[-1], "ab") as f:
        f.write(stray)
    reopen_and_check(open_log, BATCHES * PER_BATCH)


def test_file_shorter_than_published_is_validated_not_trusted(open_log: OpenLog) -> None:
    pdir = write_log(open_log)
    tail = segment_files(pdir)[-1]
    last_pos, last_size = batch_spans(tail)[-1]
    os.truncate(tail, last_pos + last_size // 2)
    reopen_and_check(open_log, (BATCHES - 1) * PER_BATCH)


# --- an OS crash: damage anywhere past the recovery point ---------------------------------


def cut_last_batch(tail: Path) -> None:
    pos, size = batch_spans(tail)[-1]
    os.truncate(tail, pos + size - 1)


def flip_in_last_batch(tail: Path) -> None:
    pos, size = batch_spans(tail)[-1]
    with open(tail, "r+b") as f:
        f.seek(pos + size // 2)
        byte = f.read(1)[0]
        f.seek(pos + size // 2)
        f.write(bytes([byte ^ 0x04]))


def zero_last_batch(tail: Path) -> None:
    pos, size = batch_spans(tail)[-1]
    with open(tail, "r+b") as f:
        f.seek(pos)
        f.write(bytes(size))


def append_garbage(tail: Path) -> None:
    with open(tail, "ab") as f:
        f.write(os.urandom(777))


@pytest.mark.parametrize(("damage", "lost"), [
    (cut_last_batch, 1), (flip_in_last_batch, 1), (zero_last_batch, 1), (append_garbage, 0),
])
def test_os_crash_damage_in_the_tail_is_cut(open_log: OpenLog, damage: Callable, lost: int
                                            ) -> None:
    pdir = write_log(open_log)
    damage(segment_files(pdir)[-1])
    rewrite_boot_id(pdir)
    reopen_and_check(open_log, (BATCHES - lost) * PER_BATCH)


# --- damage in an older segment: only the damaged batch is lost ------------------------------


def read_with_gaps(part: Partition) -> list[tuple[int, str]]:
    """(offset, id) of every record from the log start on, read as a client does: the valid
    batches a read starts with (a read of many batches is not checked batch by batch on the
    broker, like Kafka's), then on from the last one. A read's first batch is always valid, and
    one at an offset in a gap left by damage starts with the next batch after it."""
    offset, out = part.log_start_offset, []
    while (found := part.read(offset, 1 << 20)) is not None:
        data = found.read()
        pos = 0
        while pos < len(data):
            try:
                header = validate_batch(data, pos)
            except CorruptRecordError:
                break
            batch = decode_batch(data, pos)
            out += [(r.offset, payload_id(r.value)) for r in batch.records if r.offset >= offset]
            pos += header.size
            offset = header.next_offset
        assert pos > 0, f"read({offset}) starts with a damaged batch"
    return out


def bad_length(raw: bytearray) -> None:
    struct.pack_into(">i", raw, 8, 20)  # shorter than a header


def longer_length(raw: bytearray) -> None:
    struct.pack_into(">i", raw, 8, struct.unpack_from(">i", raw, 8)[0] + 7)


def bit_flip(raw: bytearray) -> None:
    raw[len(raw) // 2] ^= 0x04


def damage_batch(path: Path, which: int, damage: Callable[[bytearray], None]) -> tuple[int, int]:
    """Damage batch `which` of a segment in place; return its (first offset, size)."""
    pos, size = batch_spans(path)[which]
    with open(path, "r+b") as f:
        raw = bytearray(os.pread(f.fileno(), size, pos))
        first = struct.unpack_from(">q", raw)[0]
        damage(raw)
        os.pwrite(f.fileno(), raw, pos)
    return first, size


@pytest.mark.parametrize("exclusive", [True, False], ids=["broker", "embedded"])
@pytest.mark.parametrize("which", [0, 1, -1])  # first, middle and last batch of its segment
@pytest.mark.parametrize(("damage", "os_crash"), [
    (bad_length, False), (bad_length, True), (longer_length, False), (longer_length, True),
    (bit_flip, True)])  # a CRC is checked from the recovery point on: after an OS crash here
def test_damage_in_an_older_segment_loses_only_the_damaged_batch(
        open_log: OpenLog, caplog: pytest.LogCaptureFixture, damage: Callable,
        os_crash: bool, which: int, exclusive: bool) -> None:
    pdir = write_log(open_log)
    logs = segment_files(pdir)
    assert len(logs) >= 3 and len(batch_spans(logs[1])) >= 3
    first, size = damage_batch(logs[1], which, damage)
    if os_crash:
        rewrite_boot_id(pdir)
    expected = [(i, f"r:{i:08d}") for i in range(BATCHES * PER_BATCH)
                if not first <= i < first + PER_BATCH]
    log = open_log(exclusive=exclusive)
    part = log.partition("t", 0)
    assert part.log_end_offset == BATCHES * PER_BATCH
    assert read_with_gaps(part) == expected
    assert part.damaged_bytes == size
    warning = next(r for r in caplog.records if r.levelname == "WARNING")
    assert logs[1].name in warning.message and f"{first}" in warning.message
    assert [p.name for p in segment_files(pdir)] == [p.name for p in logs]
    assert (pdir / (logs[1].name + ".damaged")).stat().st_size > logs[1].stat().st_size
    assert part.read(first, 1 << 20) is not None  # the gap answers with the batch after it
    assert part.append(make_batch(1, start=BATCHES * PER_BATCH)).base_offset == BATCHES * PER_BATCH
    log.close()
    caplog.clear()
    again = open_log(exclusive=exclusive).partition("t", 0)
    assert again.damaged_bytes == 0 and not caplog.records
    assert read_with_gaps(again) == [*expected, (120, "r:00000120")]
    for i in range(BATCHES):
        found = again.offset_for_timestamp(RECENT_MS + i)
        assert found is not None and found[0] >= i * PER_BATCH


@pytest.mark.parametrize("exclusive", [True, False], ids=["broker", "embedded"])
@pytest.mark.parametrize(("damage", "os_crash"), [
    (bit_flip, True), (bad_length, True), (bad_length, False)])
def test_damage_inside_the_active_segment(open_log: OpenLog, exclusive: bool,
                                          damage: Callable, os_crash: bool) -> None:
    """A broker cuts the damage out and keeps the batches after it; embedded mode, where other
    processes append to the file they have open, must not replace it: it cuts the tail there."""
    pdir = write_log(open_log)
    active = segment_files(pdir)[-1]
    assert len(batch_spans(active)) >= 2
    first, _size = damage_batch(active, 0, damage)
    if os_crash:
        rewrite_boot_id(pdir)
    part = open_log(exclusive=exclusive).partition("t", 0)
    offsets = [o for o, _ in read_with_gaps(part)]
    if exclusive:
        assert offsets == [o for o in range(BATCHES * PER_BATCH) if not first <= o < first + 10]
        assert part.log_end_offset == BATCHES * PER_BATCH
    else:
        assert offsets == list(range(first))
        assert part.log_end_offset == (BATCHES * PER_BATCH if not os_crash else first)


def test_a_wholly_damaged_older_segment_leaves_a_gap(open_log: OpenLog) -> None:
    pdir = write_log(open_log)
    victim = segment_files(pdir)[1]
    first = int(victim.name[:-4])
    victim.write_bytes(os.urandom(victim.stat().st_size))
    rewrite_boot_id(pdir)
    part = open_log(exclusive=True).partition("t", 0)
    records = read_with_gaps(part)
    after = next(o for o, _ in records if o > first)
    assert [o for o, _ in records] == [*range(first), *range(after, BATCHES * PER_BATCH)]
    assert part.log_end_offset == BATCHES * PER_BATCH
    assert part.read(first, 100) is not None


def test_os_crash_trusts_what_was_flushed(open_log: OpenLog) -> None:
    """Flushed bytes are not rescanned: recovery starts at the published recovery point."""
    pdir = write_log(open_log, flush=True)
    state = published_state(pdir)
    assert (state.recovery_base, state.recovery_position) == (
        int(segment_files(pdir)[-1].name[:-4]), segment_files(pdir)[-1].stat().st_size)
    append_garbage(segment_files(pdir)[-1])
    rewrite_boot_id(pdir)
    part = open_log().partition("t", 0)
    assert part.recovered_bytes == 777
    assert_log_holds(part, BATCHES * PER_BATCH)


def test_lost_partition_state_means_a_full_check(open_log: OpenLog) -> None:
    pdir = write_log(open_log)
    flip_in_last_batch(segment_files(pdir)[-1])
    (pdir / "partition.lock").unlink()
    (pdir / "partition.checkpoint").unlink()
    reopen_and_check(open_log, (BATCHES - 1) * PER_BATCH)


def test_corrupt_partition_lock_means_a_full_check(open_log: OpenLog) -> None:
    pdir = write_log(open_log)
    cut_last_batch(segment_files(pdir)[-1])
    with open(pdir / "partition.lock", "r+b") as f:
        f.write(b"\x00" * 8)  # the state's CRC no longer matches
    reopen_and_check(open_log, (BATCHES - 1) * PER_BATCH)


def test_producer_state_forgets_batches_that_recovery_cut(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    for seq in (0, 2, 4):
        part.append(make_batch(2, start=seq, producer_id=3, producer_epoch=0, base_sequence=seq))
    log.close()  # the snapshot says offset 6
    pdir = log.data_dir / "t-0"
    cut_last_batch(segment_files(pdir)[-1])
    rewrite_boot_id(pdir)
    part = open_log().partition("t", 0)
    assert part.log_end_offset == 4
    retry = part.append(make_batch(2, start=4, producer_id=3, producer_epoch=0, base_sequence=4))
    assert (retry.base_offset, retry.duplicate) == (4, False)
    assert part.append(make_batch(2, start=2, producer_id=3, producer_epoch=0,
                                  base_sequence=2)).duplicate


# --- indexes ----------------------------------------------------------------------------------


def delete_file(path: Path) -> None:
    path.unlink()


def fill_with_garbage(path: Path) -> None:
    path.write_bytes(os.urandom(100))


def half_entry(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 3)


def plausible_but_wrong(path: Path) -> None:
    """In order and in range, but pointing into the middle of batches (offset index only)."""
    if path.suffix == ".index":
        path.write_bytes(struct.pack(">iiii", 0, 0, 10, 999))
    else:
        path.write_bytes(struct.pack(">qiqi", 1000, 0, 5000, 1))


@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
@pytest.mark.parametrize("damage", [delete_file, fill_with_garbage, half_entry,
                                    plausible_but_wrong])
@pytest.mark.parametrize("which", [0, -1])  # a closed segment, the active one
def test_damaged_index_is_rebuilt(open_log: OpenLog, suffix: str, damage: Callable,
                                  which: int) -> None:
    pdir = write_log(open_log)
    victim = segment_files(pdir, suffix)[which]
    damage(victim)
    part = reopen_and_check(open_log, BATCHES * PER_BATCH)
    for i in range(BATCHES):
        assert part.offset_for_timestamp(RECENT_MS + i) == (i * PER_BATCH, RECENT_MS + i)
        assert read_records(part, i * PER_BATCH + 3)[0].offset == i * PER_BATCH + 3
    assert victim.exists() and victim.stat().st_size > 0
    if damage is not half_entry:
        assert victim.stat().st_size % (8 if suffix == ".index" else 12) == 0
