"""`minikafka quotas`: client quotas on a running broker, as kafka-configs.sh manages them
(`--entity-type clients --entity-name X --add-config producer_byte_rate=1024`).

Quotas are enforced by a broker, so this works over the wire only: DescribeClientQuotas and
AlterClientQuotas (KIP-546) through kafka-python's client (confluent-kafka's AdminClient has no
client-quota calls), against our broker or Apache Kafka. Errors are one line.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from ..errors import KafkaError
from .backends import send_request

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
ENTITY_TYPES = {"clients": "client-id"}  # kafka-configs.sh's name -> the protocol's
EXACT, DEFAULT, ANY = 0, 1, 2  # DescribeClientQuotas match types


def add_quotas_parser(sub: Any) -> None:
    """Register `quotas` on the CLI's subcommands (`sub` from `add_subparsers`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-b", "--bootstrap-server", default=os.environ.get(BOOTSTRAP_ENV),
                        metavar="HOST:PORT", help=f"the broker (env {BOOTSTRAP_ENV})")
    common.add_argument("--data-dir", help=argparse.SUPPRESS)  # refused: quotas need a broker
    common.add_argument("--entity-type", choices=sorted(ENTITY_TYPES), default="clients",
                        help="the quota entity type (default: %(default)s; user entities need "
                        "authentication, which minikafka lacks)")
    name = common.add_mutually_exclusive_group()
    name.add_argument("--entity-name", metavar="CLIENT_ID", help="one client id")
    name.add_argument("--entity-default", action="store_true",
                      help="the default entity, for client ids without quotas of their own")
    quotas = sub.add_parser("quotas", help="describe and alter client quotas (over the wire)")
    actions = quotas.add_subparsers(dest="action", required=True, metavar="ACTION")
    described = actions.add_parser("describe", parents=[common],
                                   help="the quotas set (all entities unless one is named)")
    described.add_argument("--json", action="store_true", help="print JSON")
    alter = actions.add_parser("alter", parents=[common], help="set or remove quotas")
    alter.add_argument("--add-config", default="", metavar="K=V[,K=V]",
                       help="set quotas: producer_byte_rate, consumer_byte_rate, "
                       "request_percentage")
    alter.add_argument("--delete-config", default="", metavar="K[,K]", help="remove quotas")
    quotas.set_defaults(func=cmd_quotas)


def _parse_values(add: str, delete: str) -> dict[str, float | None]:
    changes: dict[str, float | None] = {}
    for pair in filter(None, add.split(",")):
        key, _, value = pair.partition("=")
        try:
            changes[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--add-config expects KEY=NUMBER, got {pair!r}") from None
    for key in filter(None, delete.split(",")):
        changes[key.strip()] = None
    if not changes:
        raise ValueError("alter needs --add-config or --delete-config")
    return changes


def alter(bootstrap: str, entity_type: str, name: str | None,
          changes: Mapping[str, float | None]) -> None:
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest

    Request = AlterClientQuotasRequest[0]

    entry = Request.EntryData
    response = send_request(bootstrap, Request(validate_only=False, entries=[entry(
        entity=[entry.EntityData(entity_type=entity_type, entity_name=name)],
        ops=[entry.OpData(key=key, value=value or 0.0, remove=value is None)
             for key, value in changes.items()])]))
    for result in response.entries:
        if result.error_code:
            raise KafkaError(result.error_message or f"error {result.error_code}",
                             result.error_code)


def describe(bootstrap: str, entity_type: str, name: str | None, default: bool
             ) -> list[tuple[str | None, dict[str, float]]]:
    """(entity name, quotas) of every matching entity, the default (None) first."""
    from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest

    Request = DescribeClientQuotasRequest[0]

    match = DEFAULT if default else ANY if name is None else EXACT
    response = send_request(bootstrap, Request(strict=False, components=[Request.ComponentData(
        entity_type=entity_type, match_type=match, match=name)]))
    if response.error_code:
        raise KafkaError(response.error_message or f"error {response.error_code}",
                         response.error_code)
    found = [(entry.entity[0].entity_name, {v.key: v.value for v in entry.values})
             for entry in response.entries or ()]
    return sorted(found, key=lambda item: (item[0] is not None, item[0] or ""))


def cmd_quotas(args: argparse.Namespace) -> int:
    if not args.bootstrap_server:
        raise ValueError(f"quotas are enforced by a running broker: give -b HOST:PORT (or "
                         f"{BOOTSTRAP_ENV}), not a data directory")
    entity_type = ENTITY_TYPES[args.entity_type]
    name = None if args.entity_default else args.entity_name
    if args.action == "alter":
        if name is None and not args.entity_default:
            raise ValueError("alter needs --entity-name or --entity-default")
        alter(args.bootstrap_server, entity_type, name,
              _parse_values(args.add_config, args.delete_config))
        print(f"Completed updating quotas for {_entity(entity_type, name)}.")
        return 0
    found_all = describe(args.bootstrap_server, entity_type, name, args.entity_default)
    if args.json:
        print(json.dumps([{"entity_type": entity_type, "entity_name": found, "quotas": values}
                          for found, values in found_all]))
        return 0
    for found, values in found_all:
        listed = ", ".join(f"{key}={_number(value)}" for key, value in sorted(values.items()))
        print(f"Quota configs for {_entity(entity_type, found)} are {listed}")
    return 0


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _entity(entity_type: str, name: str | None) -> str:
    return f"the default {entity_type}" if name is None else f"{entity_type} '{name}'"
