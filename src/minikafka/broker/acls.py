"""ACLs and the authorizer, as Kafka's StandardAuthorizer decides (sans-I/O but for the store).

An ACL (`AclBinding`) says: principal P from host H is ALLOWed (or DENYed) operation O on the
resources a pattern names: a topic, group, transactional id or the cluster, by LITERAL name (`*`
is every name) or by PREFIXED name. A request is authorized when the principal is a super user,
or no DENY matches and an ALLOW does; DENY wins. An ALLOW of READ, WRITE, DELETE or ALTER also
allows DESCRIBE, of ALTER_CONFIGS also DESCRIBE_CONFIGS, and ALL allows everything (Kafka's
implied operations); a DENY denies only its own operation (or all). A resource no ACL names at
all is allowed to everyone only with `allow.everyone.if.no.acl.found` (Kafka's default: false).

The ACLs live in `__meta/acls.json`, replaced atomically and durably on every change
(log/durable.py), so `minikafka acls add --data-dir` works on a stopped broker and an answered
CreateAcls survives a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass
from enum import IntEnum
from pathlib import Path

ACLS_FILE = "acls.json"  # in the data directory's __meta
MAX_CACHED_DECISIONS = 65_536  # (principal, host, operation, resource) answers kept; then cleared
WILDCARD = "*"  # a LITERAL resource name matching every name; a principal `User:*`, a host `*`
CLUSTER_NAME = "kafka-cluster"  # the cluster resource's one name


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermissionType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


Op = AclOperation
# The ALLOWed operations that also allow another (Kafka's AclEntry implied operations).
_IMPLIED_BY = {
    Op.DESCRIBE: {Op.DESCRIBE, Op.READ, Op.WRITE, Op.DELETE, Op.ALTER},
    Op.DESCRIBE_CONFIGS: {Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS},
}
# The operations each resource type knows (Kafka's AclEntry.supportedOperations), for
# validating new ACLs and for Metadata's authorized_operations.
SUPPORTED = {
    ResourceType.TOPIC: (Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DELETE, Op.ALTER,
                         Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS),
    ResourceType.GROUP: (Op.READ, Op.DESCRIBE, Op.DELETE),
    ResourceType.CLUSTER: (Op.CREATE, Op.CLUSTER_ACTION, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS,
                           Op.IDEMPOTENT_WRITE, Op.ALTER, Op.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (Op.DESCRIBE, Op.WRITE),
}


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    """One ACL: a resource pattern and an entry (principal, host, operation, permission)."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    def invalid(self) -> str | None:
        """Why this ACL cannot be created, or None (Kafka's checks on CreateAcls)."""
        if self.resource_type not in SUPPORTED:
            return f"resource type {self.resource_type.name} is not supported"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"pattern type {self.pattern_type.name} is not a pattern (LITERAL, PREFIXED)"
        if not self.name:
            return "resource name must not be empty"
        if self.resource_type is ResourceType.CLUSTER and self.name != CLUSTER_NAME:
            return f"the cluster resource is named {CLUSTER_NAME!r}"
        if self.operation is not Op.ALL and self.operation not in SUPPORTED[self.resource_type]:
            return (f"operation {self.operation.name} does not apply to "
                    f"{self.resource_type.name}")
        if self.permission not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
            return "permission must be ALLOW or DENY"
        if ":" not in self.principal:
            return f"principal {self.principal!r} is not TYPE:NAME (e.g. User:alice)"
        return None

    def applies_to(self, principal: str, host: str) -> bool:
        """The ACL is for this principal (or every user) connected from this host (or any)."""
        return self.principal in (principal, "User:*") and self.host in (host, WILDCARD)

    def denies(self, operation: AclOperation) -> bool:
        return self.permission is AclPermissionType.DENY and self.operation in (operation, Op.ALL)

    def allows(self, operation: AclOperation) -> bool:
        """An ALLOW of the operation, of ALL, or of one that implies it (WRITE implies
        DESCRIBE, as in Kafka)."""
        return self.permission is AclPermissionType.ALLOW and (
            self.operation is Op.ALL or self.operation in _IMPLIED_BY.get(operation, {operation}))

    def names(self, resource_type: ResourceType, name: str) -> bool:
        """Whether this ACL's pattern covers the resource."""
        if resource_type is not self.resource_type:
            return False
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.name)
        return self.name in (name, WILDCARD)

    def to_json(self) -> dict[str, str]:
        return {key: value.name if isinstance(value, IntEnum) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> AclBinding:
        return cls(ResourceType[data["resource_type"]], data["name"],
                   PatternType[data["pattern_type"]], data["principal"], data["host"],
                   AclOperation[data["operation"]], AclPermissionType[data["permission"]])


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Which ACLs DescribeAcls and DeleteAcls mean (Kafka's AclBindingFilter): None and ANY
    match everything; MATCH matches every pattern that covers the name."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = Op.ANY
    permission: AclPermissionType = AclPermissionType.ANY

    def matches(self, acl: AclBinding) -> bool:
        return (self.resource_type in (ResourceType.ANY, acl.resource_type)
                and self._pattern_matches(acl)
                and self.principal in (None, acl.principal)
                and self.host in (None, acl.host)
                and self.operation in (Op.ANY, acl.operation)
                and self.permission in (AclPermissionType.ANY, acl.permission))

    def _pattern_matches(self, acl: AclBinding) -> bool:
        if self.pattern_type is PatternType.MATCH:
            return self.name is None or acl.names(acl.resource_type, self.name)
        return (self.pattern_type in (PatternType.ANY, acl.pattern_type)
                and self.name in (None, acl.name))


def parse_super_users(text: str) -> frozenset[str]:
    """Kafka's super.users: principals separated by semicolons."""
    return frozenset(p.strip() for p in text.split(";") if p.strip())


class Authorizer:
    """Kafka's StandardAuthorizer over the ACLs of `__meta/acls.json`; changes are written
    before they are seen (a failed write changes nothing and raises KafkaStorageError).

    Every produced batch and fetched partition asks, so answers are cached (a dict lookup)
    until the ACLs change; a miss scans the ACLs of the resource's type only."""

    def __init__(self, meta_dir: Path, super_users: Iterable[str] = (),
                 allow_if_no_acl: bool = False) -> None:
        self.path = meta_dir / ACLS_FILE
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self.acls: frozenset[AclBinding] = frozenset()
        self._by_type: dict[ResourceType, list[AclBinding]] = {}
        self._decisions: dict[tuple[str, str, int, int, str], bool] = {}
        # Here, not at the top: `minikafka acls` loads this module, and the CLI starts on the
        # standard library alone (the log package loads C extensions).
        from ..log.durable import read_metadata

        with suppress(FileNotFoundError):
            self._set(read_metadata(self.path, _parse))

    def _set(self, acls: frozenset[AclBinding]) -> None:
        self.acls = acls
        self._by_type = {}
        for acl in acls:
            self._by_type.setdefault(acl.resource_type, []).append(acl)
        self._decisions = {}

    def authorize(self, principal: str, host: str, operation: AclOperation,
                  resource_type: ResourceType, name: str) -> bool:
        """Whether `principal` connected from `host` may do `operation` on the resource."""
        key = (principal, host, operation, resource_type, name)
        decided = self._decisions.get(key)
        if decided is None:
            if len(self._decisions) >= MAX_CACHED_DECISIONS:
                self._decisions = {}
            decided = self._decisions[key] = self._decide(principal, host, operation,
                                                          resource_type, name)
        return decided

    def _decide(self, principal: str, host: str, operation: AclOperation,
                resource_type: ResourceType, name: str) -> bool:
        if principal in self.super_users:
            return True
        covering = [acl for acl in self._by_type.get(resource_type, ())
                    if acl.names(resource_type, name)]
        if not covering:
            return self.allow_if_no_acl
        mine = [acl for acl in covering if acl.applies_to(principal, host)]
        if any(acl.denies(operation) for acl in mine):
            return False
        return any(acl.allows(operation) for acl in mine)

    def authorize_any(self, principal: str, host: str, operation: AclOperation,
                      resource_type: ResourceType) -> bool:
        """Whether some resource of the type allows the operation (Kafka's
        authorizeByResourceType: an ALLOW for the principal that no DENY of the same pattern or
        a wildcard/prefix covering it undoes)."""
        if principal in self.super_users:
            return True
        mine = [acl for acl in self._by_type.get(resource_type, ())
                if acl.applies_to(principal, host)]
        denied = [acl for acl in mine if acl.denies(operation)]
        return any(acl.allows(operation)
                   and not any(deny.names(resource_type, acl.name) for deny in denied)
                   for acl in mine)

    def operations(self, principal: str, host: str, resource_type: ResourceType, name: str
                   ) -> set[int]:
        """The operations allowed on the resource (Metadata's authorized_operations)."""
        return {op for op in SUPPORTED[resource_type]
                if self.authorize(principal, host, op, resource_type, name)}

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        return sorted(acl for acl in self.acls if acl_filter.matches(acl))

    def change(self, add: Iterable[AclBinding] = (), remove: Iterable[AclBinding] = ()) -> None:
        """Add and remove ACLs, in one durable write."""
        from ..log.durable import write_atomically

        acls = (self.acls - set(remove)) | set(add)
        write_atomically(self.path, _dump(acls))
        self._set(acls)


def _parse(text: str) -> frozenset[AclBinding]:
    return frozenset(AclBinding.from_json(acl) for acl in json.loads(text)["acls"])


def _dump(acls: Iterable[AclBinding]) -> str:
    return json.dumps({"version": 1, "acls": [acl.to_json() for acl in sorted(acls)]}, indent=1)
