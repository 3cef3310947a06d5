"""ACLs with real clients (issue 17): confluent-kafka's AdminClient creates, describes and
deletes them; producers, consumers, groups, topic admin and transactions are allowed or refused
per operation with Kafka's *_AUTHORIZATION_FAILED errors; Metadata hides what a principal may
not describe; super users pass every check. One broker, SASL_PLAINTEXT with PLAIN (cheap
logins), users alice and bob and the super user admin."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from minikafka.cli.main import main as cli
from minikafka.shop.ports import free_port

from .conftest import InProcessBroker

USERS = ("admin", "alice", "bob")


class Acled:
    def __init__(self, broker: InProcessBroker, port: int) -> None:
        self.broker, self.port = broker, port
        self.admins: dict[str, AdminClient] = {}  # kept: a dropped client fails its futures

    def config(self, user: str, **extra: Any) -> dict[str, Any]:
        return {"bootstrap.servers": f"127.0.0.1:{self.port}",
                "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": user, "sasl.password": f"{user}-secret"} | extra

    def admin(self, user: str = "admin") -> AdminClient:
        if user not in self.admins:
            self.admins[user] = AdminClient(self.config(user))
        return self.admins[user]

    def allow(self, user: str, rtype: ResourceType, name: str, *ops: AclOperation,
              pattern: ResourcePatternType = ResourcePatternType.LITERAL,
              permission: AclPermissionType = AclPermissionType.ALLOW) -> None:
        bindings = [AclBinding(rtype, name, pattern, f"User:{user}", "*", op, permission)
                    for op in ops]
        for future in self.admin().create_acls(bindings).values():
            future.result(10)


@pytest.fixture(scope="module")
def acled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acled]:
    data_dir = tmp_path_factory.mktemp("acled") / "data"
    for user in USERS:
        assert cli(["users", "add", user, "--password", f"{user}-secret", "--mechanism",
                    "SCRAM-SHA-256", "--iterations", "4096", "--data-dir", str(data_dir)]) == 0
    port = free_port()
    broker = InProcessBroker(
        data_dir, "--no-ui", "--group-initial-rebalance-delay-ms", "0",
        "--listeners", f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "--listener-security-protocol-map", "SASL_PLAINTEXT:SASL_PLAINTEXT",
        "--authorizer-class-name", "StandardAuthorizer", "--super-users", "User:admin").start()
    yield Acled(broker, port)
    assert broker.stop() == 0
    print(broker.log())


def error_of(exc: BaseException) -> Any:
    assert isinstance(exc, KafkaException), exc
    return exc.args[0].code()


def test_admin_client_creates_describes_and_deletes_acls(acled: Acled) -> None:
    admin = acled.admin()
    read = AclBinding(ResourceType.TOPIC, "acl-api", ResourcePatternType.LITERAL, "User:alice",
                      "*", AclOperation.READ, AclPermissionType.ALLOW)
    deny = AclBinding(ResourceType.GROUP, "acl-api-", ResourcePatternType.PREFIXED,
                      "User:bob", "*", AclOperation.ALL, AclPermissionType.DENY)
    for future in admin.create_acls([read, deny]).values():
        assert future.result(10) is None
    every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    described = admin.describe_acls(every).result(10)
    assert read in described and deny in described
    by_match = AclBindingFilter(ResourceType.GROUP, "acl-api-x", ResourcePatternType.MATCH,
                                None, None, AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(by_match).result(10) == [deny]
    deleted = admin.delete_acls([by_match])
    assert [f.result(10) for f in deleted.values()] == [[deny]]
    assert deny not in admin.describe_acls(every).result(10)
    # alice is no super user: she may neither read nor change ACLs
    alice = acled.admin("alice")
    # (the answer is CLUSTER_AUTHORIZATION_FAILED, as kafka-python reports; librdkafka drops
    # DescribeAcls' top-level error and shows an empty list)
    assert alice.describe_acls(every).result(10) == []
    assert_kafka_python_refuses_describe_acls(acled, "alice")
    with pytest.raises(KafkaException) as refused:
        next(iter(alice.create_acls([read]).values())).result(10)
    assert error_of(refused.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def assert_kafka_python_refuses_describe_acls(acled: Acled, user: str) -> None:
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KafkaPythonResourceType
    from kafka.errors import ClusterAuthorizationFailedError

    admin = KafkaAdminClient(
        bootstrap_servers=f"127.0.0.1:{acled.port}", security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=f"{user}-secret")
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            admin.describe_acls(ACLFilter(
                principal=None, host="*", operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY, resource_pattern=ResourcePatternFilter(
                    KafkaPythonResourceType.ANY, None, ACLResourcePatternType.ANY)))
    finally:
        admin.close()


def create_topics(acled: Acled, *names: str) -> None:
    """As the super user, who may do anything."""
    for future in acled.admin().create_topics([NewTopic(n, 1) for n in names]).values():
        future.result(10)


def produce(config: dict[str, Any], topic: str, count: int = 3) -> list[Any]:
    """Each record's delivery error (None: delivered)."""
    errors: list[Any] = []
    producer = Producer({**config, "message.timeout.ms": 5000})
    for i in range(count):
        producer.produce(topic, f"r{i}".encode(),
                         on_delivery=lambda err, _msg: errors.append(err and err.code()))
    producer.flush(10)
    return errors


def consume(config: dict[str, Any], topic: str, group: str, count: int) -> tuple[int, Any]:
    """(records read, the first error) of a subscribed consumer that commits."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    read, error = 0, None
    try:
        deadline = time.monotonic() + 10
        while read < count and error is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                error = message.error().code()
            else:
                read += 1
        if read:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return read, error


def test_produce_and_consume_need_write_read_and_the_group(acled: Acled) -> None:
    create_topics(acled, "authz-orders", "authz-secret")
    acled.allow("alice", ResourceType.TOPIC, "authz-", AclOperation.WRITE, AclOperation.READ,
                pattern=ResourcePatternType.PREFIXED)
    acled.allow("alice", ResourceType.TOPIC, "authz-secret", AclOperation.ALL,
                permission=AclPermissionType.DENY)
    acled.allow("alice", ResourceType.GROUP, "alice-readers", AclOperation.READ)
    alice = acled.config("alice")
    assert produce(alice, "authz-orders") == [None] * 3
    assert produce(alice, "authz-secret") == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 3
    assert consume(alice, "authz-orders", "alice-readers", 3) == (3, None)
    assert consume(alice, "authz-orders", "other-group", 3) == (
        0, KafkaError.GROUP_AUTHORIZATION_FAILED)
    # bob has no ACL at all: nothing (allow.everyone.if.no.acl.found is off)
    assert produce(acled.config("bob"), "authz-orders") == [
        KafkaError.TOPIC_AUTHORIZATION_FAILED] * 3
    # the super user needs no ACL
    assert produce(acled.config("admin"), "authz-secret") == [None] * 3


def test_metadata_shows_only_what_the_principal_may_describe(acled: Acled) -> None:
    create_topics(acled, "seen-by-bob", "hidden-from-bob")
    acled.allow("bob", ResourceType.TOPIC, "seen-by-bob", AclOperation.DESCRIBE)
    listed = acled.admin("bob").list_topics(timeout=10).topics
    assert "seen-by-bob" in listed and "hidden-from-bob" not in listed
    assert "hidden-from-bob" in acled.admin().list_topics(timeout=10).topics
    asked = acled.admin("bob").list_topics("hidden-from-bob", timeout=10).topics
    assert asked["hidden-from-bob"].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_create_and_delete_topics_need_create_and_delete(acled: Acled) -> None:
    acled.allow("bob", ResourceType.TOPIC, "bobs-", AclOperation.CREATE,
                pattern=ResourcePatternType.PREFIXED)
    bob = acled.admin("bob")
    created = bob.create_topics([NewTopic("bobs-topic", 1), NewTopic("not-bobs", 1)])
    assert created["bobs-topic"].result(10) is None
    with pytest.raises(KafkaException) as refused:
        created["not-bobs"].result(10)
    assert error_of(refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as refused:
        bob.delete_topics(["bobs-topic"])["bobs-topic"].result(10)
    assert error_of(refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    acled.allow("bob", ResourceType.TOPIC, "bobs-topic", AclOperation.DELETE)
    assert bob.delete_topics(["bobs-topic"])["bobs-topic"].result(10) is None


def test_transactions_need_write_on_the_transactional_id(acled: Acled) -> None:
    create_topics(acled, "authz-txn")
    for user in ("alice", "bob"):
        acled.allow(user, ResourceType.TOPIC, "authz-txn", AclOperation.WRITE)
    acled.allow("alice", ResourceType.TRANSACTIONAL_ID, "alice-tx", AclOperation.WRITE)
    alice = Producer(acled.config("alice", **{"transactional.id": "alice-tx"}))
    alice.init_transactions(10)
    alice.begin_transaction()
    alice.produce("authz-txn", b"in a transaction")
    alice.commit_transaction(10)
    bob = Producer(acled.config("bob", **{"transactional.id": "bobs-tx"}))
    with pytest.raises(KafkaException) as refused:
        bob.init_transactions(10)
    assert error_of(refused.value) == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_cli_adds_lists_and_removes_acls(acled: Acled, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "admin.properties"
    settings.write_text("".join(f"{k}={v}\n" for k, v in acled.config("admin").items()
                                if k != "bootstrap.servers"))
    wire = ["-b", f"127.0.0.1:{acled.port}", "--command-config", str(settings)]
    assert cli(["acls", "add", *wire, "--topic", "cli-", "--resource-pattern-type",
                "prefixed", "--principal", "User:carol", "--operation", "read",
                "--operation", "describe"]) == 0
    capsys.readouterr()
    assert cli(["acls", "list", *wire, "--principal", "User:carol", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(a["name"], a["pattern_type"], a["operation"]) for a in listed} == {
        ("cli-", "PREFIXED", "READ"), ("cli-", "PREFIXED", "DESCRIBE")}
    assert cli(["acls", "remove", *wire, "--principal", "User:carol", "--operation",
                "read"]) == 0
    assert "Removed 1 ACL(s)." in capsys.readouterr().out
    assert cli(["acls", "list", *wire, "--principal", "User:carol", "--json"]) == 0
    assert [a["operation"] for a in json.loads(capsys.readouterr().out)] == ["DESCRIBE"]


def test_cli_writes_a_stopped_brokers_acls(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert cli(["acls", "add", "--data-dir", data, "--cluster", "--principal", "User:ops",
                "--operation", "alter", "--deny"]) == 0
    capsys.readouterr()
    assert cli(["acls", "list", "--data-dir", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{
        "resource_type": "CLUSTER", "name": "kafka-cluster", "pattern_type": "LITERAL",
        "principal": "User:ops", "host": "*", "operation": "ALTER", "permission": "DENY"}]
    assert cli(["acls", "add", "--data-dir", data, "--group", "g", "--principal", "User:ops",
                "--operation", "write"]) != 0
    assert "operation WRITE does not apply to GROUP" in capsys.readouterr().err
