"""Transactions in embedded mode: the read_committed consumer, `Producer.transaction()`, its
fencing and its crash safety, against real data directories and real processes."""

from __future__ import annotations

from pathlib import Path

from minikafka import Consumer
from minikafka.log import LogManager
from minikafka.records import encode_batch

from .test_embedded import drain


def _txn_batch(pid: int, seq: int, *values: bytes) -> bytes:
    return encode_batch([(None, v, (), None) for v in values], producer_id=pid, producer_epoch=0,
                        base_sequence=seq, transactional=True)


def test_read_committed_consumer_stops_at_the_lso_and_skips_aborted_records(tmp_path: Path
                                                                           ) -> None:
    """Committed and aborted transactions interleaved with plain records and an open one: a
    read_committed consumer returns the plain and committed records below the LSO, a
    read_uncommitted one everything, neither a marker."""
    log = LogManager(tmp_path)
    log.create_topic("t", 1)
    p = log.partition("t", 0)
    p.append(encode_batch([(None, b"plain", (), None)]))
    p.append(_txn_batch(1, 0, b"c1"))
    p.append(_txn_batch(2, 0, b"a1"))
    p.append(_txn_batch(1, 1, b"c2"))
    p.append(_txn_batch(2, 1, b"a2"))
    p.write_marker(2, 0, False, 0)
    p.write_marker(1, 0, True, 0)
    p.append(_txn_batch(3, 0, b"open"))
    p.append(encode_batch([(None, b"after-open", (), None)]))

    def read(level: str) -> list[bytes | None]:
        with Consumer(tmp_path, "t", auto_offset_reset="earliest",
                      isolation_level=level) as consumer:
            return [m.value for m in drain(consumer)]

    assert read("read_committed") == [b"plain", b"c1", b"c2"]
    assert read("read_uncommitted") == [b"plain", b"c1", b"a1", b"c2", b"a2", b"open",
                                        b"after-open"]
    p.write_marker(3, 0, True, 0)
    assert read("read_committed") == [b"plain", b"c1", b"c2", b"open", b"after-open"]
    log.close()
