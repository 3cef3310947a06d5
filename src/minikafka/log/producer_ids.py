"""Producer ids for idempotent producers: unique across restarts, without a write per id.

Like Kafka's controller, we reserve ids in blocks: the end of the current block is persisted
before any id of it is handed out, and a restart starts after it (unused ids are skipped).
"""

from __future__ import annotations

from pathlib import Path

from ..log.durable import read_metadata, write_atomically

BLOCK_SIZE = 1000
STATE_FILE = "producer-ids"


class ProducerIdManager:
    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / STATE_FILE
        start = read_metadata(self._path, int) if self._path.exists() else 0
        self._next = self._block_end = start

    def allocate(self) -> int:
        if self._next >= self._block_end:
            block_end = self._next + BLOCK_SIZE
            write_atomically(self._path, f"{block_end}\n")  # may fail: then no id is handed out
            self._block_end = block_end
        producer_id = self._next
        self._next += 1
        return producer_id
