"""The transaction log (Kafka's __transaction_state): every transactional id's metadata, one
CRC-framed record per change, in `<data-dir>/__meta/transactions.log`.

A change is written here before it is answered or acted on, so a restart (or a SIGKILL) finds
each transaction where its last answer left it: Prepare* ones get their markers written again,
Ongoing ones run on toward their timeout. A Dead record forgets the id. Compacted as the offsets
store is (`log/framed.py`): once most records are superseded, the file is rewritten with the
last record of each id. Several processes may append (the embedded producers do, under the
`flock` of `framed.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..log.framed import FramedLog, frame
from ..log.offsets import OffsetAndMetadata
from .coordinator import Transit, TxnState

FILE_NAME = "transactions.log"


def _encode(t: Transit) -> dict[str, Any]:
    return {"pid": t.producer_id, "epoch": t.producer_epoch, "last_pid": t.last_producer_id,
            "last_epoch": t.last_producer_epoch, "timeout": t.timeout_ms, "state": t.state.value,
            "partitions": sorted(t.partitions), "start": t.start_ms, "update": t.update_ms,
            "groups": sorted(t.groups),
            "offsets": [[g, topic, p, o.offset, o.leader_epoch, o.metadata, o.commit_timestamp]
                        for g, (topic, p), o in t.offsets]}


def _decode(transactional_id: str, v: dict[str, Any]) -> Transit:
    return Transit(
        transactional_id, v["pid"], v["epoch"], v["last_pid"], v["last_epoch"], v["timeout"],
        TxnState(v["state"]), frozenset((t, p) for t, p in v["partitions"]), v["start"],
        v["update"], frozenset(v["groups"]),
        tuple((g, (t, p), OffsetAndMetadata(o, e, m, ts)) for g, t, p, o, e, m, ts
              in v["offsets"]))


class TransactionLog(FramedLog):
    """The last written metadata of every transactional id."""

    _txns: dict[str, Transit]

    @classmethod
    def in_meta_dir(cls, meta_dir: Path) -> TransactionLog:
        return cls(meta_dir / FILE_NAME, compact_min_entries=1000)

    def _reset(self) -> None:
        self._txns = {}

    def _apply(self, key: str, value: Any) -> int:
        transit = _decode(key, value)
        if transit.state is TxnState.DEAD:
            self._txns.pop(key, None)
        else:
            self._txns[key] = transit
        return 1

    def _live_entries(self) -> int:
        return len(self._txns)

    def _live_frames(self) -> Iterator[bytes]:
        for key, transit in self._txns.items():
            yield frame(key, _encode(transit))

    def write(self, transit: Transit) -> None:
        """Store one change (all of it or none; KafkaStorageError when the disk refuses)."""
        self._append(transit.transactional_id, _encode(transit))

    def transactions(self) -> list[Transit]:
        with self._mutex:
            self._refresh()
            return list(self._txns.values())
