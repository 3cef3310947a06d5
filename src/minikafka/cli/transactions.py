"""`minikafka transactions`: transactional ids and their transactions (kafka-transactions.sh
list / describe).

Against a broker (-b) it sends ListTransactions and DescribeTransactions (KIP-664) on a
connection of its own, so it works against Apache Kafka too (on a cluster of several brokers,
only the bootstrap broker's transactional ids are listed and described). On a data directory
(--data-dir, no broker needed, e.g. after a crash) it reads the transaction coordinator's log,
where every id's last state is. Errors are one line.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ErrorCode, KafkaError
from .backends import BOOTSTRAP_ENV, DEFAULT_DATA_DIR, print_table, send_request


@dataclass(frozen=True, slots=True)
class Described:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    state: str
    timeout_ms: int
    start_ms: int  # -1: no transaction
    partitions: tuple[tuple[str, int], ...]


def add_transactions_parser(sub: Any) -> None:
    """Register `transactions` on the CLI's subcommands (`sub` from `add_subparsers`)."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("-b", "--bootstrap-server", default=os.environ.get(BOOTSTRAP_ENV),
                       metavar="HOST:PORT", help=f"a broker (env {BOOTSTRAP_ENV})")
    where.add_argument("--data-dir", default=None,
                       help="read a data directory's transaction log instead (env "
                       f"MINIKAFKA_DATA_DIR; default: {DEFAULT_DATA_DIR})")
    common.add_argument("--json", action="store_true", help="print JSON")
    txns = sub.add_parser("transactions", help="list and describe transactions")
    actions = txns.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common],
                                 help="every transactional id, its producer id and state")
    listing.add_argument("--state", action="append", default=[],
                         help="only ids in this state (Ongoing, CompleteCommit...); repeatable")
    describe = actions.add_parser("describe", parents=[common],
                                  help="an id's producer, epoch, state, timeout, partitions")
    describe.add_argument("transactional_id")
    txns.set_defaults(func=cmd_transactions)


# --- where the answers come from ---------------------------------------------------------------


def list_over_wire(bootstrap: str, states: Sequence[str]) -> list[tuple[str, int, str]]:
    from kafka.protocol.admin.transactions import ListTransactionsRequest

    response = send_request(bootstrap, ListTransactionsRequest[0](
        state_filters=list(states), producer_id_filters=[]))
    if response.error_code:
        raise KafkaError(f"ListTransactions failed: {ErrorCode(response.error_code).name}",
                         response.error_code)
    return sorted((t.transactional_id, t.producer_id, t.transaction_state)
                  for t in response.transaction_states)


def describe_over_wire(bootstrap: str, transactional_id: str) -> Described:
    from kafka.protocol.admin.transactions import DescribeTransactionsRequest

    response = send_request(bootstrap, DescribeTransactionsRequest[0](
        transactional_ids=[transactional_id]))
    (found,) = response.transaction_states
    if found.error_code:
        raise KafkaError(f"transactional id {transactional_id!r}: "
                         f"{ErrorCode(found.error_code).name}", found.error_code)
    return Described(transactional_id, found.producer_id, found.producer_epoch,
                     found.transaction_state, found.transaction_timeout_ms,
                     found.transaction_start_time_ms,
                     tuple((t.topic, p) for t in found.topics for p in t.partitions))


def _from_data_dir(data_dir: str) -> list[Described]:
    from ..log.manager import META
    from ..txn.log import FILE_NAME, TransactionLog

    path = Path(data_dir) / META / FILE_NAME
    if not path.exists():
        if not (Path(data_dir) / META).is_dir():
            raise KafkaError(f"{data_dir} is not a minikafka data directory")
        return []
    txn_log = TransactionLog(path)
    try:
        return [Described(t.transactional_id, t.producer_id, t.producer_epoch, t.state,
                          t.timeout_ms, t.start_ms, tuple(sorted(t.partitions)))
                for t in txn_log.transactions()]
    finally:
        txn_log.close()


# --- the command ----------------------------------------------------------------------------------


def _time(ms: int) -> str:
    return "-" if ms < 0 else datetime.fromtimestamp(ms / 1000, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _print_described(found: Described) -> None:
    print_table(("TRANSACTIONAL ID", "PRODUCER ID", "EPOCH", "STATE", "TIMEOUT MS", "STARTED"),
                 [(found.transactional_id, found.producer_id, found.producer_epoch, found.state,
                   found.timeout_ms, _time(found.start_ms))])
    if found.partitions:
        print()
        print_table(("TOPIC", "PARTITION"), found.partitions)


def _listed(rows: Iterable[Described], states: Sequence[str]) -> list[tuple[str, int, str]]:
    return sorted((d.transactional_id, d.producer_id, d.state) for d in rows
                  if not states or d.state in states)


def cmd_transactions(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap_server
    data_dir = args.data_dir or DEFAULT_DATA_DIR
    if args.action == "list":
        rows = list_over_wire(bootstrap, args.state) if bootstrap \
            else _listed(_from_data_dir(data_dir), args.state)
        if args.json:
            print(json.dumps([{"transactional_id": t, "producer_id": p, "state": state}
                              for t, p, state in rows]))
        else:
            print_table(("TRANSACTIONAL ID", "PRODUCER ID", "STATE"), rows)
        return 0
    found = describe_over_wire(bootstrap, args.transactional_id) if bootstrap else next(
        (d for d in _from_data_dir(data_dir) if d.transactional_id == args.transactional_id),
        None)
    if found is not None:
        if args.json:
            print(json.dumps({**asdict(found), "partitions": [list(p) for p in found.partitions]}))
        else:
            _print_described(found)
        return 0
    raise KafkaError(f"transactional id {args.transactional_id!r}: TRANSACTIONAL_ID_NOT_FOUND",
                     ErrorCode.TRANSACTIONAL_ID_NOT_FOUND)
