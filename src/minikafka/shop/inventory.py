"""The inventory service: reserves stock for new orders, all items or none, and never oversells;
puts restocks (StockAdded) on the shelf.

Per product it keeps `available`, `reserved` and `sold`, whose sum is the stock received (column
`initial`: what the catalogue started with, plus every restock); CHECK constraints make a
negative count impossible to write. Per order
it keeps one reservation row whose state only moves forward:

    created  ─► reserved ─► committed (the order shipped)
             │          └─► released  (the order was rejected after reserving)
             └► refused   (not enough stock)

Two instances may share the database: every change runs in a BEGIN IMMEDIATE transaction, so one
instance's check-and-reserve cannot interleave with the other's.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from .events import (
    ORDER_STATUS,
    RESTOCKS,
    Event,
    Item,
    OrderStatusChanged,
    StockAdded,
    StockRejected,
    StockReleased,
    StockReserved,
)
from .runtime import Reject, Tx, transaction

CATALOGUE = "catalogue.json"


def load_catalogue(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Products with their starting stock: the file shipped in the package unless given."""
    if path is None:
        text = resources.files(__package__).joinpath(CATALOGUE).read_text()
    else:
        text = Path(path).read_text()
    products: list[dict[str, Any]] = json.loads(text)["products"]
    return products


def write_catalogue(path: Path, stock: dict[str, int]) -> Path:
    """A catalogue file of `stock` (product id -> starting units), for tests and benchmarks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"products": [
        {"product_id": p, "name": f"product {p}", "stock": n} for p, n in stock.items()]}))
    return path


class InventoryService:
    """Owns `products` and `reservations`; answers each new order with StockReserved/Rejected."""

    name = "inventory"
    topics = (ORDER_STATUS, RESTOCKS)
    schema = """
    CREATE TABLE IF NOT EXISTS products (
        product_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        initial INTEGER NOT NULL CHECK (initial >= 0),
        available INTEGER NOT NULL CHECK (available >= 0),
        reserved INTEGER NOT NULL CHECK (reserved >= 0),
        sold INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
        CHECK (available + reserved + sold = initial)
    );
    CREATE TABLE IF NOT EXISTS reservations (
        order_id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('reserved', 'refused', 'released', 'committed')),
        items TEXT NOT NULL
    );
    """

    def __init__(self, catalogue: str | Path | None = None) -> None:
        self.catalogue = catalogue

    def setup(self, db: sqlite3.Connection) -> None:
        """Seed products on first start; a restart (or a second instance) keeps the stock."""
        with transaction(db):
            db.executemany(
                "INSERT OR IGNORE INTO products (product_id, name, initial, available, reserved) "
                "VALUES (:product_id, :name, :stock, :stock, 0)", load_catalogue(self.catalogue))

    def after_batch(self, db: sqlite3.Connection) -> None:
        """Everything this service does happens inside the event's transaction."""

    def concerns(self, event_type: str) -> bool:
        """Restocks, and the statuses that move stock: new, rejected and shipped orders."""
        return event_type in _ACTS_ON

    def handle(self, tx: Tx, event: Event) -> None:
        if isinstance(event, StockAdded):
            self._restock(tx, event)
        elif isinstance(event, OrderStatusChanged) and event.status in _STOCK_MOVES:
            _STOCK_MOVES[event.status](self, tx, event)

    def _reserve(self, tx: Tx, event: OrderStatusChanged) -> None:
        if _reservation(tx.db, event.order_id) is not None:
            return  # this order was answered already
        wanted = _quantities(event.items)
        shortages = []
        for product_id, quantity in sorted(wanted.items()):
            row = tx.db.execute("SELECT available FROM products WHERE product_id = ?",
                                (product_id,)).fetchone()
            if row is None:
                shortages.append(f"unknown product {product_id}")
            elif row["available"] < quantity:
                shortages.append(f"product {product_id}: {quantity} wanted, "
                                 f"{row['available']} available")
        state = "refused" if shortages else "reserved"
        tx.db.execute("INSERT INTO reservations (order_id, state, items) VALUES (?, ?, ?)",
                      (event.order_id, state, json.dumps(wanted)))
        if shortages:
            tx.emit(StockRejected(order_id=event.order_id,
                                  reason="out of stock: " + "; ".join(shortages)))
            return
        tx.db.executemany("UPDATE products SET available = available - ?, "
                          "reserved = reserved + ? WHERE product_id = ?",
                          [(q, q, p) for p, q in wanted.items()])
        tx.emit(StockReserved(order_id=event.order_id, items=event.items))

    def _restock(self, tx: Tx, event: StockAdded) -> None:
        """Units arrived: on the shelf, and counted as received."""
        updated = tx.db.execute("UPDATE products SET available = available + ?, "
                                "initial = initial + ? WHERE product_id = ?",
                                (event.quantity, event.quantity, event.product_id)).rowcount
        if not updated:
            raise Reject(f"unknown product {event.product_id!r}")

    def _settle(self, tx: Tx, event: OrderStatusChanged, state: str, into: str) -> None:
        """Move a held reservation out of `reserved`, back to the shelf or out of the door."""
        row = _reservation(tx.db, event.order_id)
        if row is None or row["state"] != "reserved":
            return  # nothing held: refused, or settled already
        wanted: dict[str, int] = json.loads(row["items"])
        tx.db.executemany(f"UPDATE products SET reserved = reserved - ?, {into} = {into} + ? "
                          "WHERE product_id = ?", [(q, q, p) for p, q in wanted.items()])
        tx.db.execute("UPDATE reservations SET state = ? WHERE order_id = ?",
                      (state, event.order_id))
        if state == "released":
            tx.emit(StockReleased(order_id=event.order_id, items=event.items))


def _quantities(items: list[Item]) -> dict[str, int]:
    """Units wanted per product (an order may name a product on several lines)."""
    wanted: Counter[str] = Counter()
    for item in items:
        wanted[item.product_id] += item.quantity
    return dict(wanted)


def _reservation(db: sqlite3.Connection, order_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute("SELECT * FROM reservations WHERE order_id = ?",
                                         (order_id,)).fetchone()
    return row


def stock_view(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every product's stock, as the API and the live view show it."""
    return [dict(r) for r in db.execute(
        "SELECT product_id, name, available, reserved, sold, initial FROM products "
        "ORDER BY product_id")]


# What each order status does to stock (`handle`); the others concern inventory not at all.
_STOCK_MOVES: dict[str, Callable[[InventoryService, Tx, OrderStatusChanged], None]] = {
    "created": InventoryService._reserve,
    "rejected": lambda service, tx, event: service._settle(tx, event, "released", "available"),
    "shipped": lambda service, tx, event: service._settle(tx, event, "committed", "sold"),
}
_ACTS_ON = frozenset({StockAdded.__name__,
                      *(f"{OrderStatusChanged.__name__}.{status}" for status in _STOCK_MOVES)})
