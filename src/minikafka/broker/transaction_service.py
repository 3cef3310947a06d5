"""The transaction coordinator's runtime: its log and its clock (the I/O around the state
machine in `txn/coordinator.py` and the log in `txn/log.py`; `ops` runs the requests through
them, the broker the periodic tasks: timed-out transactions aborted, unfinished markers retried,
idle ids expired).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import wall_ms
from ..txn.coordinator import TransactionCoordinator, TxnConfig
from ..txn.log import TransactionLog
from .config import BrokerConfig


@dataclass(slots=True)
class TransactionService:
    """The coordinator, loaded from its log; `clock` is wall-clock milliseconds."""

    coordinator: TransactionCoordinator
    log: TransactionLog
    clock: Callable[[], int] = field(default=wall_ms)

    @classmethod
    def open(cls, config: BrokerConfig, meta_dir: Path) -> TransactionService:
        coordinator = TransactionCoordinator(TxnConfig(
            max_timeout_ms=config.transaction_max_timeout_ms,
            id_expiration_ms=config.transactional_id_expiration_ms))
        txn_log = TransactionLog.in_meta_dir(meta_dir)
        for transit in txn_log.transactions():
            coordinator.load(transit)
        return cls(coordinator, txn_log)
