"""`minikafka acls list|add|remove`: the broker's ACLs, as kafka-acls.sh manages them.

Over the wire (`-b`, `--command-config` as for `minikafka users`) through confluent-kafka's
AdminClient (DescribeAcls, CreateAcls, DeleteAcls), so against our broker or Apache Kafka; the
client must be a super user or hold ALTER (add, remove) or DESCRIBE (list) on the cluster. On a
stopped broker's data directory (`--data-dir`) the ACL file is written directly: that is how
the first ACLs are made before any principal may make more (or use `super_users`).

A resource is one of --topic, --group, --transactional-id or --cluster, by LITERAL name (`*`:
every name) or PREFIXED (`--resource-pattern-type prefixed`). `list` and `remove` take the same
options as filters: what is left out matches anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..broker.acls import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    AclOperation,
    AclPermissionType,
    Authorizer,
    PatternType,
    ResourceType,
)
from .backends import admin_result
from .users import add_target_arguments, admin_client, check_target, on_disk

OPERATIONS = [op.name.lower() for op in AclOperation if op > AclOperation.ANY]


def add_acls_parser(sub: Any) -> None:
    """Register `acls` on the CLI's subcommands (`sub` from `add_subparsers`)."""
    common = argparse.ArgumentParser(add_help=False)
    add_target_arguments(common)
    resource = common.add_mutually_exclusive_group()
    resource.add_argument("--topic", help="a topic name (or prefix, or *)")
    resource.add_argument("--group", help="a consumer group id (or prefix, or *)")
    resource.add_argument("--transactional-id", help="a transactional id (or prefix, or *)")
    resource.add_argument("--cluster", action="store_true", help="the cluster")
    common.add_argument("--principal", help="e.g. User:alice (User:* is everyone)")
    common.add_argument("--host", help="the client's address (* : any)")
    common.add_argument("--operation", action="append", choices=OPERATIONS,
                        help="repeatable: read, write, create, delete, alter, describe, "
                        "describe_configs, alter_configs, idempotent_write, all, ...")
    common.add_argument("--deny", action="store_true", help="a DENY entry (default: ALLOW)")
    common.add_argument("--json", action="store_true", help="print JSON")
    acls = sub.add_parser("acls", help="list, add and remove ACLs (with --authorizer-class-name)")
    actions = acls.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text, patterns in (
            ("list", "the ACLs matching the options", ("any", "match", "literal", "prefixed")),
            ("add", "allow (or deny) principals operations on a resource",
             ("literal", "prefixed")),
            ("remove", "the ACLs matching the options", ("any", "match", "literal",
                                                         "prefixed"))):
        parser = actions.add_parser(action, parents=[common], help=text)
        parser.add_argument("--resource-pattern-type", choices=patterns, default=patterns[0],
                            help="default: %(default)s")
    acls.set_defaults(func=cmd_acls)


def _resource(args: argparse.Namespace) -> tuple[ResourceType, str | None]:
    if args.topic is not None:
        return ResourceType.TOPIC, args.topic
    if args.group is not None:
        return ResourceType.GROUP, args.group
    if args.transactional_id is not None:
        return ResourceType.TRANSACTIONAL_ID, args.transactional_id
    if args.cluster:
        return ResourceType.CLUSTER, CLUSTER_NAME
    return ResourceType.ANY, None


def _bindings(args: argparse.Namespace) -> list[AclBinding]:
    resource_type, name = _resource(args)
    if name is None or not args.principal or not args.operation:
        raise ValueError("add needs a resource (--topic, --group, --transactional-id or "
                         "--cluster), --principal and --operation")
    bindings = [AclBinding(resource_type, name, PatternType[args.resource_pattern_type.upper()],
                           args.principal, args.host or "*", AclOperation[op.upper()],
                           AclPermissionType.DENY if args.deny else AclPermissionType.ALLOW)
                for op in args.operation]
    for binding in bindings:
        if reason := binding.invalid():
            raise ValueError(reason)
    return bindings


def _filters(args: argparse.Namespace) -> list[AclFilter]:
    resource_type, name = _resource(args)
    permission = AclPermissionType.DENY if args.deny else AclPermissionType.ANY
    return [AclFilter(resource_type, name, PatternType[args.resource_pattern_type.upper()],
                      args.principal, args.host, AclOperation[op.upper()], permission)
            for op in args.operation or ["any"]]


def cmd_acls(args: argparse.Namespace) -> int:
    check_target(args)
    if args.action == "add":
        bindings = _bindings(args)
        if args.data_dir:
            on_disk(args.data_dir, Authorizer, lambda acls: acls.change(add=bindings), "ACLs")
        else:
            admin = admin_client(args)  # kept until the answers are in
            for future in admin.create_acls([_to_client(b) for b in bindings]).values():
                admin_result(future)
        _show(args, "Added", bindings)
    elif args.action == "remove":
        removed: list[AclBinding] = []
        if args.data_dir:
            def remove(acls: Authorizer) -> None:
                removed.extend({a for f in _filters(args) for a in acls.matching(f)})
                acls.change(remove=removed)
            on_disk(args.data_dir, Authorizer, remove, "ACLs")
        else:
            admin = admin_client(args)
            for future in admin.delete_acls([_to_client(f) for f in _filters(args)]).values():
                removed.extend(_from_client(b) for b in admin_result(future))
        _show(args, "Removed", sorted(set(removed)))
    else:
        _show(args, None, _list(args))
    return 0


def _list(args: argparse.Namespace) -> list[AclBinding]:
    if args.data_dir:
        from ..log.manager import META

        acls = Authorizer(Path(args.data_dir) / META)
        return sorted({a for f in _filters(args) for a in acls.matching(f)})
    admin = admin_client(args)
    return sorted({_from_client(b) for f in _filters(args)
                   for b in admin_result(admin.describe_acls(_to_client(f)))})


def _show(args: argparse.Namespace, verb: str | None, acls: list[AclBinding]) -> None:
    if args.json:
        print(json.dumps([acl.to_json() for acl in acls], indent=1))
        return
    if verb:
        print(f"{verb} {len(acls)} ACL(s).")
    for a in acls:
        print(f"{a.permission.name} {a.principal} from {a.host} {a.operation.name} on "
              f"{a.resource_type.name} {a.name!r} ({a.pattern_type.name})")


def _to_client(acl: AclBinding | AclFilter) -> Any:
    """confluent-kafka's AclBinding or AclBindingFilter of ours (the enums share Kafka's
    codes)."""
    from confluent_kafka import admin

    cls: Any = admin.AclBinding if isinstance(acl, AclBinding) else admin.AclBindingFilter
    return cls(admin.ResourceType(int(acl.resource_type)), acl.name,
               admin.ResourcePatternType(int(acl.pattern_type)), acl.principal, acl.host,
               admin.AclOperation(int(acl.operation)),
               admin.AclPermissionType(int(acl.permission)))


def _from_client(binding: Any) -> AclBinding:
    return AclBinding(ResourceType(binding.restype.value), binding.name,
                      PatternType(binding.resource_pattern_type.value), binding.principal,
                      binding.host, AclOperation(binding.operation.value),
                      AclPermissionType(binding.permission_type.value))
