"""The `_schemas` topic: Confluent's record format, state rebuilt at start (subjects, versions,
ids, configs survive a restart), foreign or damaged records skipped with a warning, and
concurrent registrations serialized."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from diskkit import SmallDisk, small_disk

from .conftest import InProcessBroker, http_client, json_object, record, register
from .test_compatibility import ORDER, proto

__all__ = ["small_disk"]

V1 = record(("id", "string"))
V2 = record(("id", "string"), ("note", "string", ""))


def schemas_records(broker: InProcessBroker) -> list[tuple[dict[str, object], object]]:
    """Every record of `_schemas`, key and value decoded."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition("_schemas", 0, 0)])
    found = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None
            if msg.error():
                break  # the end of the partition
            value = msg.value()
            found.append((json.loads(msg.key()), None if value is None else json.loads(value)))
    finally:
        consumer.close()
    return found


def snapshot(broker: InProcessBroker) -> dict[str, object]:
    """What a client can read of the registry's state."""
    with http_client(broker) as http:
        subjects = http.get("/subjects?deleted=true").json()
        return {
            "subjects": http.get("/subjects").json(),
            "versions": {s: [http.get(f"/subjects/{s}/versions/{v}?deleted=true").json()
                             for v in http.get(f"/subjects/{s}/versions?deleted=true").json()]
                         for s in subjects},
            "configs": {s: http.get(f"/config/{s}").json() for s in subjects},
            "global": http.get("/config").json(),
        }


def test_restart_keeps_state_in_confluent_format(own_broker: InProcessBroker) -> None:
    own_broker.start()
    with http_client(own_broker) as http:
        ids = [register(http, "orders-value", schema).json()["id"] for schema in (V1, V2)]
        register(http, "events-value", json_object({"n": {"type": "integer"}}), "JSON")
        register(http, "proto-value", ORDER, "PROTOBUF")
        http.put("/config/orders-value", json={"compatibility": "FULL"})
        http.put("/config", json={"compatibility": "FORWARD"})
        register(http, "gone-value", record(("g", "int")))
        http.delete("/subjects/gone-value")
        http.delete("/subjects/gone-value?permanent=true")
        http.delete("/subjects/proto-value/versions/1")
        before = snapshot(own_broker)

    keys = [key for key, _ in schemas_records(own_broker)]
    assert keys[0] == {"keytype": "SCHEMA", "subject": "orders-value", "version": 1, "magic": 1}
    assert {"keytype": "CONFIG", "subject": None, "magic": 0} in keys
    assert {"keytype": "DELETE_SUBJECT", "subject": "gone-value", "magic": 0} in keys
    first_value = schemas_records(own_broker)[0][1]
    assert first_value == {"subject": "orders-value", "version": 1, "id": ids[0],
                           "schema": json.dumps(json.loads(V1), separators=(",", ":")).replace(
                               '"name":"id","type":"string"', '"type":"string","name":"id"'),
                           "deleted": False}
    admin = AdminClient({"bootstrap.servers": own_broker.bootstrap})
    [configs] = admin.describe_configs([ConfigResource("topic", "_schemas")]).values()
    assert configs.result(10)["cleanup.policy"].value == "compact"

    own_broker.restart()
    assert snapshot(own_broker) == before
    with http_client(own_broker) as http:
        assert register(http, "orders-value", V2).json() == {"id": ids[1]}
        new = register(http, "later-value", record(("l", "int"))).json()["id"]
        assert new > max(ids) + 2  # ids are never reused, even the hard-deleted one's
        assert http.get("/subjects/proto-value/versions").json()["error_code"] == 40401


def test_foreign_and_damaged_records_are_skipped(own_broker: InProcessBroker) -> None:
    own_broker.start()
    with http_client(own_broker) as http:
        assert register(http, "orders-value", V1).status_code == 200
    legacy = {"subject": "legacy-value", "version": 1, "id": 40, "schema": '"string"',
              "deleted": False}  # as a Confluent registry would have written it
    producer = Producer({"bootstrap.servers": own_broker.bootstrap})
    for key, value in [
        (b"not json", b"{}"),
        (b'{"keytype":"SURPRISE","magic":0}', b"{}"),
        (b'{"keytype":"SCHEMA","subject":"broken-value","version":1,"magic":1}', b"[1, 2]"),
        (b'{"keytype":"SCHEMA","subject":"legacy-value","version":1,"magic":1}',
         json.dumps(legacy).encode()),
        (b'{"keytype":"NOOP","magic":0}', None),
    ]:
        producer.produce("_schemas", value, key=key)
    assert producer.flush(10) == 0

    own_broker.restart()
    assert own_broker.log().count("skipped a record that is not a schema registry record") == 3
    with http_client(own_broker) as http:
        assert http.get("/subjects").json() == ["legacy-value", "orders-value"]
        assert http.get("/schemas/ids/40").json() == {"schema": '"string"'}
        assert register(http, "next-value", record(("n", "int"))).json() == {"id": 41}


def test_concurrent_registrations_are_serialized(own_broker: InProcessBroker) -> None:
    """Writes wait for a group-committed fsync here (--flush always), so registrations
    interleave in the broker's loop; each must still get its own id and version."""
    own_broker.extra = ("--flush", "always")
    own_broker.start()
    schemas = [proto(f"message Order {{ string id = 1; int32 n{i} = {i + 2}; }}")
               for i in range(12)]
    with http_client(own_broker) as http:
        http.put("/config", json={"compatibility": "NONE"})

        def put(schema: str) -> int:
            answer = register(http, "orders-value", schema, "PROTOBUF")
            assert answer.status_code == 200, answer.text
            return int(answer.json()["id"])

        with ThreadPoolExecutor(6) as pool:
            ids = list(pool.map(put, schemas))
            same = list(pool.map(lambda s: register(http, s, V1).json()["id"],
                                 [f"s{i}-value" for i in range(6)]))
        assert len(set(ids)) == len(schemas) and len(set(same)) == 1
        versions = [http.get(f"/subjects/orders-value/versions/{v}").json()
                    for v in http.get("/subjects/orders-value/versions").json()]
        assert [v["version"] for v in versions] == list(range(1, len(schemas) + 1))
        assert sorted(v["id"] for v in versions) == sorted(ids)


def test_a_full_disk_is_a_store_error_and_changes_nothing(small_disk: SmallDisk) -> None:
    """A write `_schemas` cannot take is Confluent's 50001, and the registry is as before it;
    once there is room the same registration succeeds, and survives a restart."""
    broker = InProcessBroker(small_disk.path, "--no-ui").start()
    big = record(*[(f"field_{i}", "string", "") for i in range(2000)])  # ~100 KB, compatible
    try:
        with http_client(broker) as http:
            assert register(http, "orders-value", V1).json() == {"id": 1}
            small_disk.fill(leave=0)
            refused = register(http, "orders-value", big)
            assert refused.status_code == 500 and refused.json()["error_code"] == 50001
            assert "Error while storing the schema" in refused.json()["message"]
            assert http.get("/subjects/orders-value/versions").json() == [1]
            small_disk.release()
            assert register(http, "orders-value", big).json() == {"id": 2}
        broker.restart()
        with http_client(broker) as http:
            assert http.get("/subjects/orders-value/versions").json() == [1, 2]
    finally:
        small_disk.release()
        assert broker.stop() == 0
