"""minikafka: a Kafka-compatible event log for Python."""

__version__ = "0.1.0"
