"""The console's Schemas page: subjects, versions and their diff, compatibility and a check,
from the registry running in the same broker (its API, then in a real browser)."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

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
