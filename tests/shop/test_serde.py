"""The shop's events are standard registry records: Confluent's own JSON Schema deserializer
reads them (validating against the registered schema), and the shop reads what Confluent's
serializer writes."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from brokerkit import InProcessBroker
from minikafka.shop.events import (
    ORDER_STATUS,
    OrderStatusChanged,
    decode,
    encode,
    use_registry,
)
from minikafka.shop.serde import subject_of


def test_events_round_trip_through_confluents_serializers(shop_broker: InProcessBroker) -> None:
    assert shop_broker.registry_url is not None
    ids = use_registry(shop_broker.registry_url)
    client = SchemaRegistryClient({"url": shop_broker.registry_url})
    context = SerializationContext(ORDER_STATUS, MessageField.VALUE)
    event = OrderStatusChanged(order_id="o-1", user_id="u", status="paid", total_price=5.0,
                               items=[{"product_id": "mug", "quantity": 2, "price": 2.5}])

    value = encode(event)
    assert int.from_bytes(value[1:5], "big") == ids[subject_of(ORDER_STATUS)]
    theirs = JSONDeserializer(None, schema_registry_client=client)  # validating
    assert theirs(value, context) == event.model_dump(mode="json")

    schema = client.get_latest_version(subject_of(ORDER_STATUS)).schema.schema_str
    serializer = JSONSerializer(schema, client, conf={"auto.register.schemas": False})
    written = serializer(event.model_dump(mode="json"), context)
    assert written is not None and decode(ORDER_STATUS, written) == event
