"""Plain helpers shared by the log tests and by `worker.py` (which runs them in subprocesses)."""

from __future__ import annotations

from pathlib import Path

from minikafka.log import Partition
from minikafka.log.partition import CHECKPOINT, PartitionState
from minikafka.log.shared import LOCK_FILE
from minikafka.records import Record, decode_batches, encode_batch

T0 = 1_700_000_000.0  # a fixed "now" (seconds) for the fake clock


class FakeClock:
    """A clock the test moves by hand (LogManager(clock=...) takes seconds, like time.time)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


def make_batch(count: int = 1, *, size: int = 100, tag: str = "r", start: int = 0,
               timestamp: int | None = None, **kwargs: object) -> bytes:
    """A batch of `count` records whose values are `tag:NNNNNNNN` padded to `size` bytes."""
    records = [Record(f"{tag}:{start + i:08d}".encode().ljust(size, b"."), f"k{i}".encode(),
                      timestamp=timestamp) for i in range(count)]
    return encode_batch(records, **kwargs)


def payload_id(value: bytes | None) -> str:
    """The `tag:NNNNNNNN` a make_batch value starts with."""
    assert value is not None
    return value.rstrip(b".").decode()


def read_records(partition: Partition, start: int | None = None, max_bytes: int = 1 << 20
                 ) -> list[Record]:
    """Every record from `start` (default: the log start) to the high watermark, checking that
    each read returns whole, valid batches that begin at or before the offset asked for."""
    offset = partition.log_start_offset if start is None else start
    out: list[Record] = []
    while True:
        found = partition.read(offset, max_bytes)
        if found is None:
            return out
        data = found.read()
        batches = list(decode_batches(data))  # validates every CRC
        assert batches, f"read({offset}) returned no whole batch"
        assert sum(b.header.size for b in batches) == len(data), "read returned a partial batch"
        assert batches[0].header.base_offset <= offset <= batches[0].header.last_offset
        for batch in batches:
            out.extend(r for r in batch.records if r.offset >= offset)
        offset = batches[-1].header.next_offset


def published_state(partition_dir: Path, name: str = LOCK_FILE) -> PartitionState:
    """The state a partition publishes in its `partition.lock` (what other processes trust), or
    with `name=CHECKPOINT` the one it saved in its checkpoint."""
    state = PartitionState.unpack((partition_dir / name).read_bytes())
    assert state is not None
    return state


def rewrite_boot_id(partition_dir: Path, boot_id: bytes = b"\x01" * 16) -> None:
    """Make the saved and published states look written before a reboot: an OS crash, not a
    process crash."""
    for name in (LOCK_FILE, CHECKPOINT):
        if (partition_dir / name).exists():
            state = published_state(partition_dir, name)._replace(boot_id=boot_id)
            with open(partition_dir / name, "r+b") as f:
                f.write(state.pack())
