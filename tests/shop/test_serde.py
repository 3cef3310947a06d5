"""The shop's events are standard registry records: Confluent's own JSON Schema deserializer
reads them (validating against the registered schema), and the shop reads what Confluent's
serializer writes."""

from __future__ import annotations

import time

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


def test_event_ids_are_version_7_uuids_in_the_order_they_were_made() -> None:
    """Time-ordered, so that a service's index of handled ids grows at its end."""
    ids = []
    for _ in range(3):
        ids.append(OrderStatusChanged(order_id="o-1", user_id="u", status="paid",
                                      total_price=5.0, items=[{"product_id": "mug",
                                                               "quantity": 1, "price": 5.0}]
                                      ).event_id)
        time.sleep(0.002)
    assert [i.version for i in ids] == [7, 7, 7]
    assert sorted(map(str, ids)) == list(map(str, ids))
