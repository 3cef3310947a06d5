"""`minikafka serve`: a single-node broker speaking the Kafka wire protocol over the log."""

from .config import BrokerConfig, add_arguments, load_config


def serve(config: BrokerConfig) -> int:
    """Run a broker in this process until SIGINT/SIGTERM; return the exit status.

    The server (and kafka-python's protocol classes) load only here, so the rest of the CLI
    starts fast.
    """
    from .server import serve as run

    return run(config)


__all__ = ["BrokerConfig", "add_arguments", "load_config", "serve"]
