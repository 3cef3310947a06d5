"""Each compatibility level on a table of schema histories, and the rules of each format: a
subject's history is registered under NONE, then the level is set and a candidate registered.
The same answer comes from the compatibility check API beforehand."""

from __future__ import annotations

import httpx
import pytest

from .conftest import json_object, record, register

ID = ("id", "string")
NOTE = ("note", "string")
NOTE_DEFAULT = ("note", "string", "")
QTY = ("qty", "int")

# Field `note` gains a default, then loses it: each step reads the one before, the last step
# cannot read the first (v1 data has no note).
GAINS_NOTE = [record(ID), record(ID, NOTE_DEFAULT)]
NEEDS_NOTE = record(ID, NOTE)
# `note` gets a default, then goes: the first version cannot read the last one's data.
LOSES_NOTE = [record(ID, NOTE), record(ID, NOTE_DEFAULT)]
NO_NOTE = record(ID)
NEW_ID_TYPE = record(("id", "int"), NOTE_DEFAULT)

LEVEL_CASES = [  # level, history, candidate, accepted
    ("NONE", GAINS_NOTE, NEW_ID_TYPE, True),
    ("BACKWARD", GAINS_NOTE, NEEDS_NOTE, True),
    ("BACKWARD", [record(ID)], record(ID, QTY), False),
    ("BACKWARD", GAINS_NOTE, NEW_ID_TYPE, False),
    ("BACKWARD_TRANSITIVE", GAINS_NOTE, NEEDS_NOTE, False),
    ("BACKWARD_TRANSITIVE", GAINS_NOTE, record(ID, NOTE_DEFAULT, ("qty", "int", 0)), True),
    ("FORWARD", LOSES_NOTE, NO_NOTE, True),
    ("FORWARD", [record(ID)], record(ID, QTY), True),
    ("FORWARD", [record(ID, NOTE)], NO_NOTE, False),
    ("FORWARD_TRANSITIVE", LOSES_NOTE, NO_NOTE, False),
    ("FULL", GAINS_NOTE, NEEDS_NOTE, True),
    ("FULL", [record(ID)], record(ID, QTY), False),
    ("FULL", [record(ID, NOTE)], NO_NOTE, False),
    ("FULL_TRANSITIVE", GAINS_NOTE, NEEDS_NOTE, False),
    ("FULL_TRANSITIVE", LOSES_NOTE, NO_NOTE, False),
    ("FULL_TRANSITIVE", GAINS_NOTE, record(ID, NOTE_DEFAULT, ("qty", "int", 0)), True),
]


def attempt(http: httpx.Client, subject: str, level: str, history: list[str], candidate: str,
            schema_type: str = "AVRO") -> tuple[bool, httpx.Response]:
    """Register `history` under NONE, set `level`; check then register `candidate`: whether it
    was accepted (the check and the registration must agree)."""
    assert http.put(f"/config/{subject}", json={"compatibility": "NONE"}).status_code == 200
    for schema in history:
        assert register(http, subject, schema, schema_type).status_code == 200
    answer = http.put(f"/config/{subject}", json={"compatibility": level.lower()})
    assert answer.json() == {"compatibility": level}
    check = http.post(f"/compatibility/subjects/{subject}/versions?verbose=true",
                      json={"schema": candidate, "schemaType": schema_type})
    assert check.status_code == 200, check.text
    registered = register(http, subject, candidate, schema_type)
    accepted = registered.status_code == 200
    assert check.json()["is_compatible"] is accepted, (check.json(), registered.json())
    assert bool(check.json()["messages"]) is not accepted
    if not accepted:
        assert registered.status_code == 409 and registered.json()["error_code"] == 409
        assert registered.json()["message"].startswith(
            "Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}"')
    versions = http.get(f"/subjects/{subject}/versions").json()
    assert versions == list(range(1, len(history) + 1 + accepted))
    return accepted, registered


@pytest.mark.parametrize(("level", "history", "candidate", "accepted"), LEVEL_CASES)
def test_levels(http: httpx.Client, subject: str, level: str, history: list[str],
                candidate: str, accepted: bool) -> None:
    assert attempt(http, subject, level, history, candidate)[0] is accepted


STRING_A = {"a": {"type": "string"}}
JSON_CASES = [  # backward: the new schema must read documents valid under the old one
    (json_object(STRING_A, closed=True),
     json_object({**STRING_A, "b": {"type": "integer"}}, closed=True), True),
    (json_object({**STRING_A, "b": {"type": "integer"}}, closed=True),
     json_object(STRING_A, closed=True), False),  # removed from a closed content model
    (json_object(STRING_A), json_object({**STRING_A, "b": {"type": "integer"}}), False),
    (json_object({**STRING_A, "b": {"type": "integer"}}), json_object(STRING_A), True),
    (json_object(STRING_A, closed=True), json_object(STRING_A, ("a",), closed=True), False),
    (json_object(STRING_A, ("a",), closed=True), json_object(STRING_A, closed=True), True),
    (json_object(STRING_A, closed=True),  # old documents never hold b
     json_object({**STRING_A, "b": {"type": "integer"}}, ("b",), closed=True), False),
    (json_object(STRING_A, closed=True),
     json_object({**STRING_A, "b": {"type": "integer", "default": 0}}, ("b",), closed=True),
     True),
    (json_object({"n": {"type": "integer"}}), json_object({"n": {"type": "number"}}), True),
    (json_object({"n": {"type": "number"}}), json_object({"n": {"type": "integer"}}), False),
    (json_object({"n": {"type": "string"}}), json_object({"n": {"type": "integer"}}), False),
    (json_object(STRING_A), json_object(STRING_A, closed=True), False),  # model closed
    (json_object({"e": {"enum": ["a", "b"]}}), json_object({"e": {"enum": ["a", "b", "c"]}}),
     True),
    (json_object({"e": {"enum": ["a", "b"]}}), json_object({"e": {"enum": ["a"]}}), False),
]


@pytest.mark.parametrize(("old", "new", "accepted"), JSON_CASES)
def test_json_schema_rules(http: httpx.Client, subject: str, old: str, new: str,
                           accepted: bool) -> None:
    assert attempt(http, subject, "BACKWARD", [old], new, "JSON")[0] is accepted


def proto(body: str, package: str = "shop") -> str:
    return f'syntax = "proto3";\npackage {package};\n{body}\n'


ORDER = proto("message Order { string id = 1; int32 qty = 2; }")
PROTOBUF_CASES = [
    (proto("message Order { string id = 1; int32 qty = 2; string note = 3; }"), True),
    (proto("message Order { string id = 1; }"), True),  # a removed field
    (proto("message Order { string key = 1; int32 qty = 2; }"), True),  # a renamed field
    (proto("message Order { string id = 1; int64 qty = 2; }"), True),  # same wire type
    (proto("message Order { string id = 1; string qty = 2; }"), False),
    (proto("message Order { string id = 1; Item qty = 2; } message Item { int32 n = 1; }"),
     False),
    (proto("message Purchase { string id = 1; int32 qty = 2; }"), False),  # a renamed message
    (proto("message Order { string id = 1; int32 qty = 2; }", "store"), False),
    (proto("message Order { oneof key { string id = 1; int32 qty = 2; } }"), False),
]


@pytest.mark.parametrize(("new", "accepted"), PROTOBUF_CASES)
def test_protobuf_rules(http: httpx.Client, subject: str, new: str, accepted: bool) -> None:
    assert attempt(http, subject, "BACKWARD", [ORDER], new, "PROTOBUF")[0] is accepted


def test_level_of_subject_and_global(http: httpx.Client, subject: str) -> None:
    assert http.get(f"/config/{subject}").json()["error_code"] == 40408
    assert http.get(f"/config/{subject}?defaultToGlobal=true").json() == {
        "compatibilityLevel": "BACKWARD"}
    bad = http.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"})
    assert bad.status_code == 422 and bad.json()["error_code"] == 42203
    assert register(http, subject, NO_NOTE).status_code == 200
    http.put(f"/config/{subject}", json={"compatibility": "FULL"})
    assert http.get(f"/config/{subject}").json() == {"compatibilityLevel": "FULL"}
    assert http.delete(f"/config/{subject}").json() == {"compatibilityLevel": "FULL"}
    assert http.get(f"/config/{subject}").status_code == 404
