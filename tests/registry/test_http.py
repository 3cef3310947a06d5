"""The REST API over raw HTTP: status codes, error codes and bodies as Confluent's registry
answers them, for subjects, versions, ids, lookups, references, deletes and modes."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from google.protobuf import descriptor_pb2

from .conftest import CONTENT_TYPE, InProcessBroker, http_client, json_object, record, register

# Schemas of this module alone (ids are per schema, and other modules share the broker).
V1 = record(("id", "string"), name="HttpOrder")
V2 = record(("id", "string"), ("note", "string", ""), name="HttpOrder")


def error(response: httpx.Response, status: int, code: int) -> str:
    """The message of a refusal with this status and error_code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    body = response.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


def test_register_read_and_lookup(http: httpx.Client, subject: str) -> None:
    first = register(http, subject, json.dumps({"type": "record", "name": "HttpOrder", "fields": [
        {"name": "id", "type": "string"}]}, indent=2))
    assert first.status_code == 200 and first.headers["content-type"] == CONTENT_TYPE
    schema_id = first.json()["id"]
    assert register(http, subject, V1).json() == {"id": schema_id}  # the same, canonically
    second_id = register(http, subject, V2).json()["id"]
    assert second_id != schema_id
    other = f"{subject}-other"
    assert register(http, other, V2).json() == {"id": second_id}  # ids are per schema

    assert subject in http.get("/subjects").json()
    assert http.get(f"/subjects?subjectPrefix={subject}").json() == [subject, other]
    assert http.get(f"/subjects/{subject}/versions").json() == [1, 2]
    latest = http.get(f"/subjects/{subject}/versions/latest").json()
    assert latest == {"subject": subject, "version": 2, "id": second_id, "schema": latest["schema"]}
    assert json.loads(latest["schema"]) == json.loads(V2)
    assert http.get(f"/subjects/{subject}/versions/-1").json() == latest
    assert http.get(f"/subjects/{subject}/versions/1/schema").json() == json.loads(V1)
    assert http.get(f"/schemas/ids/{second_id}").json() == {"schema": latest["schema"]}
    assert http.get(f"/schemas/ids/{second_id}/subjects").json() == [subject, other]
    assert http.get(f"/schemas/ids/{second_id}/versions").json() == [
        {"subject": subject, "version": 2}, {"subject": other, "version": 1}]
    assert set(http.get("/schemas/types").json()) == {"AVRO", "JSON", "PROTOBUF"}

    found = http.post(f"/subjects/{subject}", json={"schema": V1})
    assert found.json() == {"subject": subject, "version": 1, "id": schema_id,
                            "schema": found.json()["schema"]}
    error(http.post(f"/subjects/{subject}", json={"schema": record(("x", "int"))}), 404, 40403)
    error(http.post(f"/subjects/{subject}-none", json={"schema": V1}), 404, 40401)


def test_errors(http: httpx.Client, subject: str) -> None:
    assert "not found" in error(http.get(f"/subjects/{subject}/versions"), 404, 40401)
    error(http.get(f"/subjects/{subject}/versions/1"), 404, 40401)
    error(http.get("/schemas/ids/987654"), 404, 40403)
    error(register(http, subject, '{"type": "record", "name": "Order"}'), 422, 42201)
    error(register(http, subject, "{not json"), 422, 42201)
    error(register(http, subject, '{"type": 12}', "JSON"), 422, 42201)
    error(register(http, subject, "message Order {", "PROTOBUF"), 422, 42201)
    undefined = error(register(http, subject, 'syntax = "proto3"; message Order { Line l = 1; }',
                               "PROTOBUF"), 422, 42201)
    assert "type 'Line' (used in Order) is not defined" in undefined
    error(register(http, subject, V1, "XML"), 422, 42201)
    error(http.post(f"/subjects/{subject}/versions", json={}), 422, 42201)
    assert register(http, subject, V1).status_code == 200
    for bad in ("0", "abc", "2147483648"):
        error(http.get(f"/subjects/{subject}/versions/{bad}"), 422, 42202)
    error(http.get(f"/subjects/{subject}/versions/7"), 404, 40402)
    error(http.post(f"/compatibility/subjects/{subject}/versions/7", json={"schema": V1}),
          404, 40402)
    error(http.post(f"/compatibility/subjects/{subject}-none/versions/latest",
                    json={"schema": V1}), 404, 40401)
    error(http.post(f"/subjects/{subject}/versions", content=b"{oops"), 400, 400)
    error(http.get("/no/such/path"), 404, 404)


def test_soft_and_hard_deletes(http: httpx.Client, subject: str) -> None:
    v1, v2 = (record(*fields, name="Deleted") for fields in ([("id", "string")], [
        ("id", "string"), ("note", "string", "")]))  # schemas of this test alone: ids go
    ids = [register(http, subject, schema).json()["id"] for schema in (v1, v2)]
    error(http.delete(f"/subjects/{subject}/versions/1?permanent=true"), 404, 40407)
    assert http.delete(f"/subjects/{subject}/versions/1").json() == 1
    error(http.delete(f"/subjects/{subject}/versions/1"), 404, 40406)
    assert http.get(f"/subjects/{subject}/versions").json() == [2]
    assert http.get(f"/subjects/{subject}/versions?deleted=true").json() == [1, 2]
    error(http.get(f"/subjects/{subject}/versions/1"), 404, 40402)
    assert http.get(f"/subjects/{subject}/versions/1?deleted=true").json()["id"] == ids[0]
    assert http.get(f"/schemas/ids/{ids[0]}").status_code == 200  # ids outlive soft deletes

    error(http.delete(f"/subjects/{subject}?permanent=true"), 404, 40405)
    assert http.delete(f"/subjects/{subject}").json() == [2]
    assert subject not in http.get("/subjects").json()
    assert subject in http.get("/subjects?deleted=true").json()
    error(http.delete(f"/subjects/{subject}"), 404, 40404)
    error(http.get(f"/subjects/{subject}/versions"), 404, 40401)
    error(http.post(f"/subjects/{subject}", json={"schema": v2}), 404, 40401)
    assert http.post(f"/subjects/{subject}?deleted=true", json={"schema": v2}).json()[
        "version"] == 2

    # Registering again after a soft delete: a new version, the old id.
    assert register(http, subject, v2).json() == {"id": ids[1]}
    assert http.get(f"/subjects/{subject}/versions").json() == [3]

    assert http.delete(f"/subjects/{subject}").json() == [3]
    assert http.delete(f"/subjects/{subject}?permanent=true").json() == [1, 2, 3]
    error(http.get(f"/subjects/{subject}/versions?deleted=true"), 404, 40401)
    error(http.delete(f"/subjects/{subject}"), 404, 40401)
    assert subject not in http.get("/subjects?deleted=true").json()
    error(http.get(f"/schemas/ids/{ids[0]}"), 404, 40403)


def test_references(http: httpx.Client, subject: str) -> None:
    item = record(("sku", "string"), name="Item")
    assert register(http, f"{subject}-item", item).status_code == 200
    order = json.dumps({"type": "record", "name": "Order", "fields": [
        {"name": "item", "type": "Item"}]})
    refs = [{"name": "Item", "subject": f"{subject}-item", "version": 1}]
    error(register(http, subject, order), 422, 42201)  # Item unknown without the reference
    error(register(http, subject, order, references=[{**refs[0], "version": 9}]), 422, 42201)
    order_id = register(http, subject, order, references=refs).json()["id"]
    answer = http.get(f"/schemas/ids/{order_id}").json()
    assert answer["references"] == refs and json.loads(answer["schema"]) == json.loads(order)
    assert http.get(f"/subjects/{subject}-item/versions/1/referencedby").json() == [order_id]
    referenced = http.delete(f"/subjects/{subject}-item")
    error(referenced, 422, 42206)

    line = 'syntax = "proto3";\npackage shop.common;\nmessage Line { string sku = 1; }\n'
    assert register(http, f"{subject}-line", line, "PROTOBUF").status_code == 200
    basket = ('syntax = "proto3";\npackage shop;\nimport "shop/line.proto";\n'
              "message Basket { repeated common.Line lines = 1; }\n")
    error(register(http, subject + "-basket", basket, "PROTOBUF"), 422, 42201)
    basket_id = register(http, f"{subject}-basket", basket, "PROTOBUF", references=[
        {"name": "shop/line.proto", "subject": f"{subject}-line", "version": 1}]).json()["id"]
    serialized = http.get(f"/schemas/ids/{basket_id}?format=serialized").json()["schema"]
    [field] = descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode(serialized)).message_type[0].field
    assert (field.type_name, list(http.get(f"/schemas/ids/{basket_id}").json()["references"])
            ) == (".shop.common.Line", [{"name": "shop/line.proto",
                                          "subject": f"{subject}-line", "version": 1}])

    address = json_object({"city": {"type": "string"}})
    assert register(http, f"{subject}-address", address, "JSON").status_code == 200
    person = json_object({"home": {"$ref": "address.json"}})
    assert register(http, f"{subject}-person", person, "JSON", references=[
        {"name": "address.json", "subject": f"{subject}-address", "version": 1}]
    ).status_code == 200


def test_modes(own_broker: InProcessBroker) -> None:
    """Global mode changes get a broker of their own."""
    own_broker.start()
    with http_client(own_broker) as http:
        assert http.get("/mode").json() == {"mode": "READWRITE"}
        assert register(http, "orders-value", V1).status_code == 200
        error(http.put("/mode", json={"mode": "SOMETIMES"}), 422, 42204)
        error(http.put("/mode", json={"mode": "IMPORT"}), 422, 42205)  # subjects exist
        assert http.put("/mode/orders-value", json={"mode": "READONLY"}).json() == {
            "mode": "READONLY"}
        assert http.get("/mode/orders-value").json() == {"mode": "READONLY"}
        error(register(http, "orders-value", V2), 422, 42205)
        assert register(http, "other-value", V2).status_code == 200
        assert http.delete("/mode/orders-value").json() == {"mode": "READONLY"}
        error(http.get("/mode/orders-value"), 404, 40409)
        assert register(http, "orders-value", V2).status_code == 200

        assert http.put("/config", json={"compatibility": "NONE"}).json() == {
            "compatibility": "NONE"}
        assert http.get("/config").json() == {"compatibilityLevel": "NONE"}
        assert register(http, "orders-value", record(("id", "int"))).status_code == 200

        assert http.put("/mode?force=true", json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
        imported = register(http, "imported-value", record(("x", "long")), id=500, version=7)
        assert imported.json() == {"id": 500}
        assert http.get("/subjects/imported-value/versions").json() == [7]
        error(register(http, "clash-value", record(("y", "long")), id=500), 422, 42205)


@pytest.mark.parametrize("content_type", [CONTENT_TYPE, "application/json"])
def test_content_types(http: httpx.Client, subject: str, content_type: str) -> None:
    answer = http.post(f"/subjects/{subject}/versions", content=json.dumps({"schema": V1}),
                       headers={"Content-Type": content_type})
    assert answer.status_code == 200 and "id" in answer.json()


def test_normalize(http: httpx.Client, subject: str) -> None:
    """With ?normalize=true, schemas that differ only in what cannot change the data (Avro's
    docs, the order of a JSON schema's keys) are one schema."""
    plain = json.dumps({"type": "record", "name": "Normal", "fields": [
        {"name": "id", "type": "string"}]})
    documented = json.dumps({"type": "record", "name": "Normal", "doc": "an order", "fields": [
        {"name": "id", "type": "string", "doc": "its key"}]})
    first = register(http, subject, plain, params={"normalize": "true"})
    assert register(http, subject, documented, params={"normalize": "true"}).json() == \
        first.json()
    assert http.post(f"/subjects/{subject}?normalize=true", json={"schema": documented}).json()[
        "version"] == 1
    error(http.post(f"/subjects/{subject}", json={"schema": documented}), 404, 40403)
    assert register(http, subject, documented).json() != first.json()  # not normalized


def test_bounded_request_body(http: httpx.Client, subject: str) -> None:
    """A body is read only up to its bound: a bigger one is refused, the registry serves on."""
    huge = json.dumps({"schema": json.dumps({"type": "enum", "name": "Big", "symbols": [
        f"S{i}" for i in range(200_000)]})})
    assert len(huge) > 2 * 1024 * 1024  # over the bound (and over what _schemas could store)
    error(http.post(f"/subjects/{subject}/versions", content=huge), 413, 413)
    assert register(http, subject, V1).status_code == 200
