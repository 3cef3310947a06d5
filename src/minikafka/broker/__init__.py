"""A single-node broker speaking the Kafka wire protocol over the log (`minikafka serve`).

Only the settings load here, so the CLI starts fast; the server and kafka-python's protocol
classes load with `broker.server`.
"""

from .config import BrokerConfig, add_arguments, load_config

__all__ = ["BrokerConfig", "add_arguments", "load_config"]
