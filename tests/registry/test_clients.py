"""Confluent's serializers against our broker and registry: each format's records produced with
the registry's wire format, consumed and decoded through it; an incompatible schema refused."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from .conftest import InProcessBroker, create_topic, json_object, record

FieldType = descriptor_pb2.FieldDescriptorProto.Type
ORDERS = [{"id": f"o-{i}", "qty": i} for i in range(3)]
AVRO = record(("id", "string"), ("qty", "int"))
JSON = json_object({"id": {"type": "string"}, "qty": {"type": "integer"}}, ("id",), closed=True)


def proto_class(fields: tuple[tuple[str, int, str], ...] = (("id", 1, "TYPE_STRING"),
                                                            ("qty", 2, "TYPE_INT32")),
                file: str = "order.proto") -> Any:
    """A generated-like message class shop.Order, built from a descriptor (no protoc here)."""
    proto = descriptor_pb2.FileDescriptorProto(name=file, package="shop", syntax="proto3")
    message = proto.message_type.add(name="Order")
    for name, number, kind in fields:
        message.field.add(name=name, number=number, type=FieldType.Value(kind),
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def round_trip(broker: InProcessBroker, topic: str, serialize: Callable[..., bytes | None],
               deserialize: Callable[..., Any], values: list[Any]) -> list[Any]:
    """Produce `values` through `serialize`, consume them back through `deserialize`."""
    create_topic(broker.bootstrap, topic)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(topic, serialize(value, ctx))
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    try:
        while len(got) < len(values):
            msg = consumer.poll(10)
            assert msg is not None and msg.error() is None, msg and msg.error()
            raw = msg.value()
            assert raw[0] == 0  # the registry's wire format: magic 0, then the schema id
            got.append(deserialize(raw, ctx))
    finally:
        consumer.close()
    return got


def test_avro(broker: InProcessBroker, sr: SchemaRegistryClient, topic: str) -> None:
    serializer = AvroSerializer(sr, AVRO)
    deserializer = AvroDeserializer(sr)
    assert round_trip(broker, topic, serializer, deserializer, ORDERS) == ORDERS
    latest = sr.get_latest_version(f"{topic}-value")
    assert latest.version == 1 and latest.schema.schema_type == "AVRO"


def test_json_schema(broker: InProcessBroker, sr: SchemaRegistryClient, topic: str) -> None:
    serializer = JSONSerializer(JSON, sr)
    deserializer = JSONDeserializer(None, schema_registry_client=sr)  # the writer's, by id
    assert round_trip(broker, topic, serializer, deserializer, ORDERS) == ORDERS
    latest = sr.get_latest_version(f"{topic}-value")
    assert json.loads(latest.schema.schema_str) == json.loads(JSON)


def test_protobuf(broker: InProcessBroker, sr: SchemaRegistryClient, topic: str) -> None:
    order = proto_class()
    serializer = ProtobufSerializer(order, sr, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(order, {"use.deprecated.format": False},
                                        schema_registry_client=sr)
    got = round_trip(broker, topic, serializer, deserializer, [order(**o) for o in ORDERS])
    assert [{"id": m.id, "qty": m.qty} for m in got] == ORDERS
    assert sr.get_latest_version(f"{topic}-value").schema.schema_type == "PROTOBUF"


def _proto(fields: tuple[tuple[str, int, str], ...]) -> str:
    from confluent_kafka.schema_registry.protobuf import _schema_to_str

    return str(_schema_to_str(proto_class(fields).DESCRIPTOR.file))


INCOMPATIBLE = {  # per format: a first schema, then one that cannot read its data
    "AVRO": (AVRO, record(("id", "string"), ("qty", "int"), ("note", "string"))),
    "JSON": (JSON, json_object({"id": {"type": "integer"}, "qty": {"type": "integer"}},
                               ("id",), closed=True)),
    "PROTOBUF": (_proto((("id", 1, "TYPE_STRING"), ("qty", 2, "TYPE_INT32"))),
                 _proto((("id", 1, "TYPE_INT64"), ("qty", 2, "TYPE_INT32")))),
}


@pytest.mark.parametrize("schema_type", INCOMPATIBLE)
def test_incompatible_schema_refused(sr: SchemaRegistryClient, subject: str,
                                     schema_type: str) -> None:
    first, breaking = INCOMPATIBLE[schema_type]
    registered = sr.register_schema(subject, Schema(first, schema_type))
    assert not sr.test_compatibility(subject, Schema(breaking, schema_type))
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(breaking, schema_type))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert sr.get_versions(subject) == [1]
    assert sr.register_schema(subject, Schema(first, schema_type)) == registered  # same id


def test_protobuf_registered_as_text(broker: InProcessBroker, sr: SchemaRegistryClient,
                                     topic: str) -> None:
    assert broker.registry_url is not None
    """A schema registered as .proto text (as Java's serializer or `minikafka schemas register`
    do) is read by Python's deserializer, which asks for it in the serialized (descriptor)
    format; nested messages, enums, maps, oneofs and imports resolve as protoc would."""
    text = """syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Order {
  string id = 1;
  int32 qty = 2;
  message Line { string sku = 1; }
  repeated Line lines = 3;
  enum Kind { WEB = 0; SHOP = 1; }
  Kind kind = 4;
  map<string, int64> counts = 5;
  oneof pay { string card = 6; int64 cash = 7; }
  google.protobuf.Timestamp at = 8;
  optional string note = 9;
}
"""
    schema_id = sr.register_schema(f"{topic}-value", Schema(text, "PROTOBUF"))
    reader = SchemaRegistryClient({"url": broker.registry_url.rstrip("/")})  # a consumer's,
    serialized = reader.get_schema(schema_id, fmt="serialized").schema_str  # with no cache
    proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(
        timestamp_pb2.DESCRIPTOR.serialized_pb))
    proto.name = "order.proto"
    pool.Add(proto)
    order = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    message = order(id="o-1", qty=2, lines=[{"sku": "a"}], kind=1, counts={"x": 3}, cash=5,
                    note="hi")
    message.at.FromSeconds(1_700_000_000)
    # The registry's wire format by hand: magic 0, the schema id, message index 0, the message.
    framed = b"\x00" + struct.pack(">I", schema_id) + b"\x00" + message.SerializeToString()
    deserializer = ProtobufDeserializer(order, {"use.deprecated.format": False},
                                        schema_registry_client=reader)
    got = deserializer(framed, SerializationContext(topic, MessageField.VALUE))
    assert got == message and got.at.seconds == 1_700_000_000
