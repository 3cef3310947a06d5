"""The notification service: tells the customer about every status, once per (order, status).

Receiving a status only writes a row to the `notifications` outbox table (UNIQUE per order and
status, in the event's transaction): that is the exactly-once part. Delivery happens after the
transaction, through a pluggable Sender; the rows delivered after a batch are marked and
announced with NotificationSent in one transaction (one per row cost more than the rest of the
service's work). An external channel cannot be part of our transaction, so a crash between
sending and marking sends those messages again (at least once to the outside, exactly once in
our records and on the `notifications` topic).
"""

from __future__ import annotations

import logging
import smtplib
import sqlite3
import sys
import time
from email.message import EmailMessage
from typing import Protocol

from .events import ORDER_STATUS, Event, NotificationSent, OrderStatusChanged
from .runtime import Tx, transaction

log = logging.getLogger("minikafka.shop")


class Sender(Protocol):
    """A way to reach customers."""

    channel: str

    def recipient(self, user_id: str) -> str: ...

    def send(self, recipient: str, subject: str, body: str) -> None: ...


class ConsoleSender:
    """Prints one line per notification (the default: the outbox table is the record)."""

    channel = "console"

    def recipient(self, user_id: str) -> str:
        return f"user {user_id}"

    def send(self, recipient: str, subject: str, body: str) -> None:
        sys.stdout.write(f"to {recipient}: {subject}\n")  # one write (print's are two, the
        sys.stdout.flush()  # line and its end, when unbuffered: the shop's processes are)


class SmtpSender:
    """E-mails each notification through an SMTP relay."""

    channel = "email"

    def __init__(self, host: str, port: int = 25, sender: str = "shop@localhost",
                 domain: str = "localhost") -> None:
        self.host, self.port, self.sender, self.domain = host, port, sender, domain

    def recipient(self, user_id: str) -> str:
        return f"user-{user_id}@{self.domain}"

    def send(self, recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, recipient, subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(message)


def _text(event: OrderStatusChanged) -> tuple[str, str]:
    subject = f"Your order {event.order_id} is {event.status}"
    body = f"{subject}.\nTotal: {event.total_price:.2f}\n"
    if event.reason:
        body += f"Reason: {event.reason}\n"
    return subject, body


class NotificationService:
    """Owns the `notifications` table; publishes NotificationSent for each delivered row."""

    name = "notifications"
    topics = (ORDER_STATUS,)
    schema = """
    CREATE TABLE IF NOT EXISTS notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id TEXT NOT NULL,
        status TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        delivered_at REAL,
        UNIQUE (order_id, status)
    );
    CREATE INDEX IF NOT EXISTS undelivered ON notifications (id) WHERE delivered_at IS NULL;
    """

    def __init__(self, sender: Sender | None = None) -> None:
        self.sender: Sender = sender or ConsoleSender()

    def setup(self, db: sqlite3.Connection) -> None:
        """Nothing to seed."""

    def concerns(self, event_type: str) -> bool:
        return event_type.partition(".")[0] == OrderStatusChanged.__name__

    def handle(self, tx: Tx, event: Event) -> None:
        assert isinstance(event, OrderStatusChanged)
        subject, body = _text(event)
        tx.db.execute(
            "INSERT OR IGNORE INTO notifications (order_id, status, channel, recipient, subject, "
            "body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.order_id, event.status, self.sender.channel,
             self.sender.recipient(event.user_id), subject, body, time.time()))

    def after_batch(self, db: sqlite3.Connection, limit: int = 500) -> None:
        """Deliver what is waiting, oldest first, then mark what went out; stop at the first
        failure and retry the rest later."""
        rows = db.execute("SELECT * FROM notifications WHERE delivered_at IS NULL ORDER BY id "
                          "LIMIT ?", (limit,)).fetchall()
        sent = []
        for row in rows:
            try:
                self.sender.send(row["recipient"], row["subject"], row["body"])
            except OSError as exc:
                log.warning("notifications: %s unreachable, retrying later: %s",
                            self.sender.channel, exc)
                break
            sent.append(row)
        if not sent:
            return
        with transaction(db):
            tx = Tx(db)
            marked = db.execute(  # those not marked by another instance meanwhile
                "UPDATE notifications SET delivered_at = ? WHERE delivered_at IS NULL AND id IN "
                f"({', '.join('?' * len(sent))}) RETURNING id, order_id, status, channel, "
                "recipient", (time.time(), *(row["id"] for row in sent))).fetchall()
            for row in sorted(marked, key=lambda r: r["id"]):  # RETURNING keeps no order
                tx.emit(NotificationSent(order_id=row["order_id"], status=row["status"],
                                         channel=row["channel"], recipient=row["recipient"]))
