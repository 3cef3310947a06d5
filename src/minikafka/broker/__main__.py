"""`python -m minikafka.broker`: the same as `minikafka serve`."""

from __future__ import annotations

import argparse
import sys

from . import add_arguments, load_config, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="minikafka serve", description="Run a Kafka-compatible broker over a data directory.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = load_config(args)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
