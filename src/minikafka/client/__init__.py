"""Embedded clients: produce to and consume from a data directory in-process, no server."""

from .consumer import Consumer, Message
from .producer import Producer, Sent

__all__ = ["Consumer", "Message", "Producer", "Sent"]
