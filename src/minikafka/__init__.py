"""minikafka: a Kafka-compatible event log for Python."""

from .client import Consumer, Message, Producer, Sent
from .records import Record

__version__ = "0.1.0"
__all__ = ["Consumer", "Message", "Producer", "Record", "Sent", "__version__"]
