"""The registry of a real broker (see brokerkit), reached by Confluent's SchemaRegistryClient and
by raw HTTP (httpx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from broker.conftest import create_topic, topic
from brokerkit import InProcessBroker, broker, own_broker

__all__ = ["InProcessBroker", "broker", "create_topic", "own_broker", "topic"]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@pytest.fixture(scope="session")
def broker_args() -> tuple[str, ...]:
    """No console: the registry is what these tests talk to."""
    return ("--no-ui",)


@pytest.fixture
def subject(topic: str) -> str:
    """A subject unique to this test, named as the serializers name a topic's values."""
    return f"{topic}-value"


def http_client(target: InProcessBroker) -> httpx.Client:
    assert target.registry_url is not None
    return httpx.Client(base_url=target.registry_url, timeout=10,
                        headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})


@pytest.fixture
def http(broker: InProcessBroker) -> Iterator[httpx.Client]:
    with http_client(broker) as client:
        yield client


@pytest.fixture
def sr(broker: InProcessBroker) -> SchemaRegistryClient:
    assert broker.registry_url is not None
    return SchemaRegistryClient({"url": broker.registry_url.rstrip("/")})


def record(*fields: tuple[str, Any], name: str = "Order") -> str:
    """An Avro record schema: fields as (name, type) or (name, type, default)."""
    return json.dumps({"type": "record", "name": name, "fields": [
        {"name": f[0], "type": f[1], **({"default": f[2]} if len(f) > 2 else {})}
        for f in fields]})


def json_object(properties: dict[str, Any], required: tuple[str, ...] = (),
                closed: bool = False) -> str:
    """A JSON schema of an object: open content model unless `closed`."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return json.dumps(schema)


def register(client: httpx.Client, subject: str, schema: str, schema_type: str = "AVRO",
             params: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    """POST /subjects/{subject}/versions; `extra` goes in the body (references, id, ...)."""
    return client.post(f"/subjects/{subject}/versions", params=params,
                       json={"schema": schema, "schemaType": schema_type, **extra})
