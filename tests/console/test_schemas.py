"""The console's Schemas page: subjects, versions and their diff, compatibility and a check,
from the registry running in the same broker (its API, then in a real browser)."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from playwright.sync_api import expect

from registry.test_clients import proto_class

from .conftest import Console, screenshot, start_console_broker

V1 = json.dumps({"type": "record", "name": "Shipment", "fields": [
    {"name": "id", "type": "string"}]})
V2 = json.dumps({"type": "record", "name": "Shipment", "fields": [
    {"name": "id", "type": "string"}, {"name": "carrier", "type": "string", "default": "post"}]})
BREAKING = json.dumps({"type": "record", "name": "Shipment", "fields": [
    {"name": "id", "type": "long"}]})


def register(console: Console, subject: str, *schemas: str) -> None:
    url = console.broker.registry_url
    assert url is not None
    for schema in schemas:
        answer = httpx.post(f"{url}subjects/{subject}/versions", json={"schema": schema},
                            timeout=10)
        assert answer.status_code == 200, answer.text


def test_schemas_api(console: Console) -> None:
    register(console, "shipments-value", V1, V2)
    listed = console.get("api/schemas")
    assert listed["enabled"] and listed["level"] == "BACKWARD"
    [row] = [s for s in listed["subjects"] if s["subject"] == "shipments-value"]
    assert (row["versions"], row["latest"], row["type"], row["level"]) == (2, 2, "AVRO",
                                                                            "BACKWARD")
    described = console.get("api/schemas/shipments-value")
    assert [v["version"] for v in described["versions"]] == [1, 2]
    assert json.loads(described["versions"][1]["schema"]) == json.loads(V2)
    checked = console.call("POST", "api/schemas/shipments-value/check",
                           {"schema": BREAKING, "schemaType": "AVRO"})
    assert not checked["is_compatible"] and checked["messages"]
    assert console.call("POST", "api/schemas/shipments-value/check",
                        {"schema": V2})["is_compatible"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        console.get("api/schemas/nobody-value")
    assert missing.value.code == 404
    assert json.loads(missing.value.read()) == {"error": "Subject 'nobody-value' not found.",
                                                "code": 40401}


def test_without_a_registry(tmp_path: Path) -> None:
    console = start_console_broker(tmp_path / "data", "--no-schema-registry")
    try:
        assert console.get("api/schemas") == {"enabled": False, "level": None, "subjects": []}
        with pytest.raises(urllib.error.HTTPError) as refused:
            console.get("api/schemas/x")
        assert refused.value.code == 404
    finally:
        assert console.broker.stop() == 0


def test_schemas_page(console: Console, page: Any) -> None:
    register(console, "parcels-value", V1, V2)
    page.goto(console.url + "#/schemas")
    row = page.locator("tr[data-subject='parcels-value']")
    expect(row).to_contain_text("AVRO")
    row.get_by_role("link", name="parcels-value").click()
    expect(page.locator("#title")).to_have_text("Subject parcels-value")
    expect(page.locator("[data-card=level] .value")).to_have_text("BACKWARD")
    expect(page.locator("tr[data-version]")).to_have_count(2)
    expect(page.locator("#schema-diff .added", has_text='"carrier"')).to_have_count(1)
    expect(page.locator("#schema-diff .removed")).to_have_count(0)
    page.fill("#check-schema", BREAKING)
    page.click("#check")
    expect(page.locator("#check-result")).to_contain_text("Incompatible:")
    expect(page.locator("#check-result")).to_contain_text("TYPE_MISMATCH")
    screenshot(page, "schemas")
    page.select_option("#diff-from", "2")
    page.select_option("#diff-to", "1")  # backwards: the field goes
    expect(page.locator("#schema-diff .removed", has_text='"carrier"')).to_have_count(1)
    expect(page.locator("#schema-diff .added")).to_have_count(0)


def test_message_browser_decodes_records_of_registered_schemas(console: Console,
                                                              page: Any) -> None:
    """Avro, JSON Schema and Protobuf records (Confluent's serializers) show decoded under their
    schema id, subject and type; raw bytes and an unknown schema id show as they are."""
    topic = "parcels.wire"
    assert console.broker.registry_url is not None
    sr = SchemaRegistryClient({"url": console.broker.registry_url.rstrip("/")})
    order = proto_class()
    serializers = [  # (the subject's topic, serializer, value)
        (topic, AvroSerializer(sr, V2.replace("Shipment", "Parcel")),
         {"id": "p-1", "carrier": "ship"}),
        ("parcels.json", JSONSerializer(json.dumps({"type": "object"}), sr), {"id": "p-2"}),
        ("parcels.proto", ProtobufSerializer(order, sr, {"use.deprecated.format": False}),
         order(id="p-3", qty=3)),
    ]
    values = [serialize(value, SerializationContext(subject_topic, MessageField.VALUE))
              for subject_topic, serialize, value in serializers]
    values += [b"plain bytes", b"\x00\x00\x00\x7f\x00{}"]  # the last: an unknown schema id
    producer = Producer({"bootstrap.servers": console.broker.bootstrap})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(10) == 0

    records = console.get(f"api/topics/{topic}/records?partition=0")["records"]
    shown = [r["schema"] for r in records]
    assert [(s["type"], s["subjects"], json.loads(s["value"])) for s in shown[:3]] == [
        ("AVRO", [f"{topic}-value"], {"id": "p-1", "carrier": "ship"}),
        ("JSON", ["parcels.json-value"], {"id": "p-2"}),
        ("PROTOBUF", ["parcels.proto-value"], {"id": "p-3", "qty": 3})]
    assert shown[3:] == [None, None]

    page.goto(console.url + f"#/messages?topic={topic}&partition=0&start=beginning")
    avro_row = page.locator("tr.record[data-offset='0']")
    expect(avro_row.locator(".chip.schema")).to_have_text(
        f"schema {shown[0]['id']} · {topic}-value · AVRO")
    avro_row.click()  # the row opens on its detail: the value decoded, pretty-printed
    expect(page.locator("tr.detail .decoded pre.value").first).to_contain_text(
        '"carrier": "ship"')
    expect(page.locator("tr.record[data-offset='2']")).to_contain_text('"qty": 3')
    for raw in (3, 4):
        expect(page.locator(f"tr.record[data-offset='{raw}'] .chip.schema")).to_have_count(0)
    expect(page.locator("tr.record[data-offset='3']")).to_contain_text("plain bytes")
    screenshot(page, "messages-decoded")
