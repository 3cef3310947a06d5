"""The authorizer's decisions (Kafka's StandardAuthorizer semantics), as a table, and the ACL
store's durability."""

from __future__ import annotations

from pathlib import Path

import pytest

from minikafka.broker import acls
from minikafka.broker.acls import AclBinding, AclFilter, Authorizer, parse_super_users

Op, T, P = acls.AclOperation, acls.ResourceType, acls.PatternType
ALLOW, DENY = acls.AclPermissionType.ALLOW, acls.AclPermissionType.DENY


def acl(name: str, op: acls.AclOperation, perm: acls.AclPermissionType = ALLOW, *,
        rtype: acls.ResourceType = T.TOPIC, pattern: acls.PatternType = P.LITERAL,
        principal: str = "User:alice", host: str = "*") -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


# (ACLs, principal, host, operation, resource type, name, allowed)
CASES = [
    ([], "User:alice", "1.2.3.4", Op.READ, T.TOPIC, "t", False),  # no ACL: closed by default
    ([acl("t", Op.READ)], "User:alice", "h", Op.READ, T.TOPIC, "t", True),
    ([acl("t", Op.READ)], "User:bob", "h", Op.READ, T.TOPIC, "t", False),  # other principal
    ([acl("t", Op.READ)], "User:alice", "h", Op.WRITE, T.TOPIC, "t", False),  # other operation
    ([acl("t", Op.READ)], "User:alice", "h", Op.READ, T.TOPIC, "u", False),  # other topic
    ([acl("t", Op.READ)], "User:alice", "h", Op.READ, T.GROUP, "t", False),  # other type
    ([acl("*", Op.READ)], "User:alice", "h", Op.READ, T.TOPIC, "any", True),  # wildcard name
    ([acl("t", Op.READ, principal="User:*")], "User:bob", "h", Op.READ, T.TOPIC, "t", True),
    ([acl("orders-", Op.WRITE, pattern=P.PREFIXED)], "User:alice", "h", Op.WRITE, T.TOPIC,
     "orders-eu", True),
    ([acl("orders-", Op.WRITE, pattern=P.PREFIXED)], "User:alice", "h", Op.WRITE, T.TOPIC,
     "order", False),
    ([acl("orders-", Op.WRITE)], "User:alice", "h", Op.WRITE, T.TOPIC, "orders-eu", False),
    ([acl("t", Op.READ, host="10.0.0.1")], "User:alice", "10.0.0.1", Op.READ, T.TOPIC, "t", True),
    ([acl("t", Op.READ, host="10.0.0.1")], "User:alice", "10.0.0.2", Op.READ, T.TOPIC, "t", False),
    # implied operations: READ, WRITE, DELETE, ALTER allow DESCRIBE; ALTER_CONFIGS allows
    # DESCRIBE_CONFIGS; ALL allows everything
    ([acl("t", Op.WRITE)], "User:alice", "h", Op.DESCRIBE, T.TOPIC, "t", True),
    ([acl("t", Op.DELETE)], "User:alice", "h", Op.DESCRIBE, T.TOPIC, "t", True),
    ([acl("t", Op.ALTER_CONFIGS)], "User:alice", "h", Op.DESCRIBE_CONFIGS, T.TOPIC, "t", True),
    ([acl("t", Op.DESCRIBE)], "User:alice", "h", Op.READ, T.TOPIC, "t", False),
    ([acl("t", Op.ALL)], "User:alice", "h", Op.DELETE, T.TOPIC, "t", True),
    # deny wins, over a wildcard or prefixed allow too; a deny of READ leaves DESCRIBE alone
    ([acl("t", Op.READ), acl("t", Op.READ, DENY)], "User:alice", "h", Op.READ, T.TOPIC, "t",
     False),
    ([acl("*", Op.ALL), acl("secret", Op.ALL, DENY, pattern=P.PREFIXED)], "User:alice", "h",
     Op.READ, T.TOPIC, "secret-x", False),
    ([acl("t", Op.READ), acl("t", Op.READ, DENY, principal="User:*")], "User:alice", "h",
     Op.READ, T.TOPIC, "t", False),
    ([acl("t", Op.READ), acl("t", Op.READ, DENY)], "User:alice", "h", Op.DESCRIBE, T.TOPIC, "t",
     True),
    ([acl("t", Op.ALL), acl("t", Op.ALL, DENY, host="6.6.6.6")], "User:alice", "6.6.6.6",
     Op.WRITE, T.TOPIC, "t", False),
    # the cluster, groups and transactional ids
    ([acl("kafka-cluster", Op.CREATE, rtype=T.CLUSTER)], "User:alice", "h", Op.CREATE,
     T.CLUSTER, "kafka-cluster", True),
    ([acl("g", Op.READ, rtype=T.GROUP)], "User:alice", "h", Op.READ, T.GROUP, "g", True),
    ([acl("tx", Op.WRITE, rtype=T.TRANSACTIONAL_ID)], "User:alice", "h", Op.DESCRIBE,
     T.TRANSACTIONAL_ID, "tx", True),
    # super users pass every check, ACLs or none, deny or not
    ([acl("t", Op.ALL, DENY, principal="User:admin")], "User:admin", "h", Op.READ, T.TOPIC, "t",
     True),
]


@pytest.mark.parametrize(("acls", "principal", "host", "op", "rtype", "name", "allowed"), CASES)
def test_authorize(tmp_path: Path, acls: list[AclBinding], principal: str, host: str,
                   op: acls.AclOperation, rtype: acls.ResourceType, name: str, allowed: bool
                   ) -> None:
    authorizer = Authorizer(tmp_path, parse_super_users("User:admin; User:broker"))
    authorizer.change(add=acls)
    assert authorizer.authorize(principal, host, op, rtype, name) is allowed


def test_allow_everyone_if_no_acl_found_opens_only_unnamed_resources(tmp_path: Path) -> None:
    authorizer = Authorizer(tmp_path, allow_if_no_acl=True)
    authorizer.change(add=[acl("t", Op.READ, principal="User:bob")])
    assert authorizer.authorize("User:alice", "h", Op.WRITE, T.TOPIC, "other")
    assert not authorizer.authorize("User:alice", "h", Op.READ, T.TOPIC, "t")


def test_authorize_any_sees_allows_that_no_deny_covers(tmp_path: Path) -> None:
    authorizer = Authorizer(tmp_path)
    authorizer.change(add=[acl("a-", Op.WRITE, pattern=P.PREFIXED), acl("a", Op.ALL, DENY,
                                                                          pattern=P.PREFIXED)])
    assert not authorizer.authorize_any("User:alice", "h", Op.WRITE, T.TOPIC)
    authorizer.change(add=[acl("b", Op.WRITE)])
    assert authorizer.authorize_any("User:alice", "h", Op.WRITE, T.TOPIC)
    assert not authorizer.authorize_any("User:bob", "h", Op.WRITE, T.TOPIC)


def test_filters(tmp_path: Path) -> None:
    literal, prefixed, wild = acl("orders", Op.READ), acl("ord", Op.READ, pattern=P.PREFIXED), \
        acl("*", Op.WRITE, principal="User:bob")
    authorizer = Authorizer(tmp_path)
    authorizer.change(add=[literal, prefixed, wild])
    assert authorizer.matching(AclFilter()) == sorted([literal, prefixed, wild])
    assert authorizer.matching(AclFilter(name="orders", pattern_type=P.MATCH)) == sorted(
        [literal, prefixed, wild])
    assert authorizer.matching(AclFilter(name="ord", pattern_type=P.LITERAL)) == []
    assert authorizer.matching(AclFilter(principal="User:bob")) == [wild]
    assert authorizer.matching(AclFilter(operation=Op.READ, pattern_type=P.PREFIXED)) == [
        prefixed]


def test_acls_survive_a_restart(tmp_path: Path) -> None:
    authorizer = Authorizer(tmp_path)
    kept, gone = acl("t", Op.READ), acl("u", Op.WRITE, DENY)
    authorizer.change(add=[kept, gone])
    authorizer.change(remove=[gone])
    assert Authorizer(tmp_path).acls == {kept}


@pytest.mark.parametrize(("binding", "reason"), [
    (acl("t", Op.IDEMPOTENT_WRITE), "does not apply"),
    (acl("c", Op.CREATE, rtype=T.CLUSTER), "kafka-cluster"),
    (acl("t", Op.READ, pattern=P.MATCH), "not a pattern"),
    (acl("t", Op.READ, principal="alice"), "TYPE:NAME"),
    (acl("", Op.READ), "empty"),
])
def test_invalid_acls_say_why(binding: AclBinding, reason: str) -> None:
    assert reason in (binding.invalid() or "")


def test_a_change_is_seen_by_the_next_decision(tmp_path: Path) -> None:
    """Decisions are cached for the hot path; a change must not leave a stale one."""
    authorizer = Authorizer(tmp_path)
    read = acl("t", Op.READ)
    authorizer.change(add=[read])
    assert authorizer.authorize("User:alice", "h", Op.READ, T.TOPIC, "t")
    authorizer.change(add=[acl("t", Op.READ, DENY)])
    assert not authorizer.authorize("User:alice", "h", Op.READ, T.TOPIC, "t")
    authorizer.change(remove=authorizer.acls)
    assert not authorizer.authorize("User:alice", "h", Op.READ, T.TOPIC, "t")
