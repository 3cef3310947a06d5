"""`minikafka consume --value-format / --key-format`: records written by Confluent's serializers
to a real broker, decoded through its registry and printed as JSON; a record in no wire format
is printed raw with one warning line, not a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from registry.conftest import json_object, record
from registry.test_clients import proto_class

from .conftest import InProcessBroker, create_topic, mk

ORDERS = [{"id": "o-1", "qty": 1}, {"id": "o-2", "qty": 2}]
RAW = b"plain text, no schema"


def serializer(fmt: str, sr: SchemaRegistryClient) -> Any:
    """Confluent's serializer for `fmt`, and how it wants an order."""
    if fmt == "avro":
        return AvroSerializer(sr, record(("id", "string"), ("qty", "int"))), dict
    if fmt == "json-schema":
        schema = json_object({"id": {"type": "string"}, "qty": {"type": "integer"}}, ("id",))
        return JSONSerializer(schema, sr), dict
    order = proto_class()
    return (ProtobufSerializer(order, sr, {"use.deprecated.format": False}),
            lambda o: order(**o))


def produce(broker: InProcessBroker, topic: str, fmt: str, key_format: bool = False) -> None:
    """ORDERS in `fmt`, then a raw record; keys in `fmt` too with `key_format`."""
    assert broker.registry_url is not None
    sr = SchemaRegistryClient({"url": broker.registry_url.rstrip("/")})
    serialize, make = serializer(fmt, sr)
    create_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for order in ORDERS:
        key = (serialize(make(order), SerializationContext(topic, MessageField.KEY))
               if key_format else order["id"].encode())
        producer.produce(topic, serialize(make(order), SerializationContext(topic,
                         MessageField.VALUE)), key, partition=0)
    producer.produce(topic, RAW, b"raw", partition=0)
    assert producer.flush(30) == 0


def consume(broker: InProcessBroker, topic: str, *args: str) -> tuple[list[str], list[str]]:
    done = mk(broker, "consume", topic, "--from-beginning", "-e", "--registry",
              str(broker.registry_url), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr.splitlines()


@pytest.mark.parametrize("fmt", ["avro", "json-schema", "protobuf"])
def test_values_decoded_as_json_and_raw_records_warned(broker: InProcessBroker, topic: str,
                                                       fmt: str) -> None:
    produce(broker, topic, fmt)
    lines, errors = consume(broker, topic, "--value-format", fmt, "-f", "%k %s\\n")
    assert [line.split(" ", 1)[0] for line in lines] == ["o-1", "o-2", "raw"]
    assert [json.loads(line.split(" ", 1)[1]) for line in lines[:2]] == ORDERS
    assert lines[2] == f"raw {RAW.decode()}"
    [warning] = [e for e in errors if "wire format" in e]
    assert warning == (f"minikafka consume: {topic}[0]@2 value: not in the schema registry's "
                       "wire format, shown raw")

    lines, _ = consume(broker, topic, "--value-format", fmt, "--json")
    records = [json.loads(line) for line in lines]
    assert [r["value"] for r in records] == [*ORDERS, RAW.decode()]
    assert [r["key"] for r in records] == ["o-1", "o-2", "raw"]


def test_keys_decoded_and_an_unknown_schema_id_shown_raw(broker: InProcessBroker,
                                                         topic: str) -> None:
    produce(broker, topic, "avro", key_format=True)
    unknown = b"\x00\x00\x01\x00\x00{}"
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, unknown, b"k", partition=0)
    assert producer.flush(30) == 0
    lines, errors = consume(broker, topic, "--key-format", "avro", "--value-format", "avro",
                            "--json")
    records = [json.loads(line) for line in lines]
    assert [r["key"] for r in records[:2]] == ORDERS == [r["value"] for r in records[:2]]
    assert records[3]["value"] == unknown.decode()
    assert any(e.startswith(f"minikafka consume: {topic}[0]@3 value: schema id 65536: ")
               and e.endswith("shown raw") for e in errors), errors


def test_an_unreachable_registry_is_one_line(broker: InProcessBroker, topic: str) -> None:
    produce(broker, topic, "json-schema")
    done = mk(broker, "consume", topic, "--from-beginning", "-e", "--value-format",
              "json-schema", "--registry", "http://127.0.0.1:9")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("minikafka: error: schema registry at http://127.0.0.1:9:"), line
