"""One shop, orders through its API: the happy path, rejections, releases, bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from minikafka.shop.demo import wait_settled
from minikafka.shop.events import INVENTORY, NOTIFICATIONS, ORDER_STATUS
from minikafka.shop.generator import api_session, restock_low
from minikafka.shop.monitor import BrokerProbe, check_invariants
from minikafka.shop.stack import ShopStack

from .conftest import event_of, read_topic, start_broker, start_shop, wait_for

PRODUCTS = {"mug": 100, "lamp": 100, "rare": 3}
PAYMENT_LIMIT = 500.0


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    root = tmp_path_factory.mktemp("shop")
    broker = start_broker(root / "broker")
    stack = start_shop(root / "shop", broker, PRODUCTS,
                       orders=["--payment-limit", str(PAYMENT_LIMIT)])
    yield stack
    stack.stop()
    broker.stop()


@pytest.fixture(scope="module")
def api(shop: ShopStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shop.api_url, timeout=30) as client:
        yield client


def order(order_id: str | None, *items: tuple[str, int, float], **fields: Any) -> dict[str, Any]:
    lines = [{"product_id": p, "quantity": q, "price": price} for p, q, price in items]
    body = {"user_id": "u1", "items": lines,
            "total_price": round(sum(q * price for _, q, price in items), 2), **fields}
    if order_id is not None:
        body["order_id"] = order_id
    return body


def place(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post("/orders", json=body)
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


def final(api: httpx.Client, order_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = api.get(f"/orders/{order_id}")
        view: dict[str, Any] = response.json()
        return view if response.status_code == 200 and view["status"] in (
            "completed", "rejected") else None
    result: dict[str, Any] = wait_for(done, 30, f"order {order_id} to finish")
    return result


def stock(api: httpx.Client) -> dict[str, dict[str, int]]:
    return {p["product_id"]: p for p in api.get("/products").json()}


def events_of(shop: ShopStack, topic: str, order_id: str) -> list[dict[str, Any]]:
    return [event_of(m) for m in read_topic(shop.bootstrap, topic)
            if m.key() == order_id.encode()]


def test_happy_path_end_to_end(shop: ShopStack, api: httpx.Client) -> None:
    before = stock(api)
    order_id = place(api, order("happy-1", ("mug", 2, 10.0), ("lamp", 1, 25.5)))
    view = final(api, order_id)
    assert view["status"] == "completed"
    assert [h["status"] for h in view["history"]] == [
        "created", "confirmed", "paid", "shipped", "completed"]
    after = stock(api)
    assert after["mug"]["sold"] - before["mug"]["sold"] == 2
    assert after["lamp"]["available"] == before["lamp"]["available"] - 1
    assert after["mug"]["reserved"] == 0
    statuses = [e["status"] for e in events_of(shop, ORDER_STATUS, order_id)]
    assert statuses == ["created", "confirmed", "paid", "shipped", "completed"]
    assert [e["type"] for e in events_of(shop, INVENTORY, order_id)] == ["StockReserved"]
    sent = wait_for(lambda: len(events_of(shop, NOTIFICATIONS, order_id)) == 5 and
                    events_of(shop, NOTIFICATIONS, order_id), 15, "five notifications")
    assert sorted(e["status"] for e in sent) == sorted(statuses)


def test_out_of_stock_is_rejected_and_nothing_is_held(shop: ShopStack,
                                                      api: httpx.Client) -> None:
    before = stock(api)
    order_id = place(api, order(None, ("mug", 1, 1.0), ("rare", 4, 1.0)))
    view = final(api, order_id)
    assert view["status"] == "rejected"
    assert "out of stock" in view["reason"] and "rare" in view["reason"]
    assert stock(api) == before  # all or nothing: the mug was not reserved either
    assert [e["type"] for e in events_of(shop, INVENTORY, order_id)] == ["StockRejected"]


def test_payment_declined_releases_the_reservation(shop: ShopStack, api: httpx.Client) -> None:
    before = stock(api)
    order_id = place(api, order(None, ("lamp", 2, PAYMENT_LIMIT)))
    view = final(api, order_id)
    assert view["status"] == "rejected"
    assert "payment declined" in view["reason"]
    assert [h["status"] for h in view["history"]] == ["created", "confirmed", "rejected"]
    wait_for(lambda: [e["type"] for e in events_of(shop, INVENTORY, order_id)] == [
        "StockReserved", "StockReleased"], 15, "the reservation to be released")
    assert stock(api)["lamp"] == before["lamp"]


def test_restocking_makes_a_sold_out_product_orderable_again(shop: ShopStack,
                                                             api: httpx.Client) -> None:
    """A StockAdded event (POST /products/{id}/restock, keyed by product on topic `restocks`)
    adds units to the shelf: what was out of stock sells again, and the stock invariant
    (available + reserved + sold = received) still holds."""
    assert final(api, place(api, order(None, ("rare", 5, 1.0))))["status"] == "rejected"
    before = stock(api)["rare"]
    response = api.post("/products/rare/restock", json={"quantity": 10})
    assert response.status_code == 202, response.text
    wait_for(lambda: stock(api)["rare"]["available"] == before["available"] + 10, 15,
             "the restock to reach the shelf")
    assert final(api, place(api, order(None, ("rare", 5, 1.0))))["status"] == "completed"
    after = stock(api)["rare"]
    assert after["initial"] == before["initial"] + 10
    assert after["available"] + after["reserved"] + after["sold"] == after["initial"]
    assert api.post("/products/no-such/restock", json={"quantity": 1}).status_code == 404
    assert api.post("/products/rare/restock", json={"quantity": 0}).status_code == 422


def test_the_generator_restocks_what_runs_low(shop: ShopStack, api: httpx.Client) -> None:
    """What keeps a long `make run` healthy: the generator tops up every product whose shelf is
    below a mark, through the same API."""
    shelf = stock(api)
    mark = shelf["rare"]["available"] + 1  # rare is below it, mug and lamp far above
    assert all(shelf[p]["available"] >= mark for p in ("mug", "lamp"))

    async def top_up() -> list[str]:
        async with api_session(shop.api_url) as session:
            return await restock_low(session, below=mark, quantity=7)

    assert asyncio.run(top_up()) == ["rare"]
    wait_for(lambda: stock(api)["rare"]["available"] == shelf["rare"]["available"] + 7, 15,
             "the top-up to reach the shelf")
    assert {p: stock(api)[p]["initial"] for p in ("mug", "lamp")} == {
        p: shelf[p]["initial"] for p in ("mug", "lamp")}


def test_an_order_id_is_taken_once(shop: ShopStack, api: httpx.Client) -> None:
    body = order("twice", ("mug", 1, 2.0))
    place(api, body)
    final(api, "twice")
    response = api.post("/orders", json=body)
    assert response.status_code == 409
    assert "exists already" in response.json()["detail"]


@pytest.mark.parametrize(("body", "complaint"), [
    (order(None), "items"),
    (order(None, ("mug", 0, 1.0)), "greater than or equal to 1"),
    (order(None, ("mug", 1, -1.0)), "greater than or equal to 0"),
    ({**order(None, ("mug", 2, 3.0)), "total_price": 7.0}, "does not equal"),
    ({"items": [{"product_id": "mug", "quantity": 1, "price": 1.0}], "total_price": 1.0},
     "user_id"),
    ({**order(None, ("mug", 1, 1.0)), "colour": "red"}, "colour"),
])
def test_bad_orders_get_422_saying_why(api: httpx.Client, body: dict[str, Any],
                                       complaint: str) -> None:
    response = api.post("/orders", json=body)
    assert response.status_code == 422
    assert complaint in response.text


def test_not_json_is_422(api: httpx.Client) -> None:
    response = api.post("/orders", content=b"{not json", headers={"content-type":
                                                                   "application/json"})
    assert response.status_code == 422


def test_unknown_order_is_404_and_the_api_is_documented(api: httpx.Client) -> None:
    assert api.get("/orders/no-such-order").status_code == 404
    assert api.get("/docs").status_code == 200
    openapi = api.get("/openapi.json").json()
    assert "/orders/{order_id}" in openapi["paths"]
    body = openapi["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    model = body["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"items", "total_price", "user_id"} <= set(openapi["components"]["schemas"][model][
        "properties"])


def test_invariants_hold_once_settled(shop: ShopStack, api: httpx.Client) -> None:
    probe = BrokerProbe(shop.bootstrap)
    try:
        assert wait_settled(shop.paths, probe, time.monotonic() + 20)
        assert check_invariants(shop.paths, settled=True) == []
        assert sum(probe.dead_letters().values()) == 0
    finally:
        probe.close()
