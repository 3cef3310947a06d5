"""Two appending and two reading processes on one partition at once (shared mode, file locks)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from logkit import payload_id, read_records

from minikafka.log import LogManager

PER_WRITER = 4000


def test_two_appenders_and_two_readers(spawn: Callable, data_dir: Path) -> None:
    with LogManager(data_dir) as log:
        log.create_topic("t", 1, {"segment.bytes": 64 * 1024, "index.interval.bytes": 2048})
    total = 2 * PER_WRITER
    readers = [spawn("read", data_dir, "t", total) for _ in range(2)]
    for reader in readers:
        reader.wait_ready()  # readers follow the log from before its first record
    writers = [spawn("produce", data_dir, "t", tag, "shared", PER_WRITER) for tag in "ab"]
    for writer in writers:
        writer.wait_ready()
    (data_dir / "go").touch()
    for proc in writers + readers:
        assert proc.finish(timeout=60) == 0, proc.stderr()
    for reader in readers:
        assert reader.lines == [f"seen {total}"]
    with LogManager(data_dir) as log:
        part = log.partition("t", 0)
        records = read_records(part)
        assert len(part.segments) > 5  # the readers crossed segment rolls
    assert [r.offset for r in records] == list(range(total))
    for tag, writer in zip("ab", writers, strict=True):
        mine = [payload_id(r.value) for r in records if r.value.startswith(tag.encode())]
        assert mine == [f"{tag}:{i:08d}" for i in range(PER_WRITER)]
        acked = {int(line.split()[0]) for line in writer.lines}
        assert {r.offset for r in records if r.value.startswith(f"{tag}:".encode())} >= acked
    # the appends interleaved: neither writer ran alone
    firsts = [payload_id(r.value)[0] for r in records]
    switches = sum(1 for x, y in itertools.pairwise(firsts) if x != y)
    assert switches > 10
