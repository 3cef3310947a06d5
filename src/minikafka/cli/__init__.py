"""The `minikafka` command: `main` parses and dispatches; `backends` reaches a data directory or a
broker; `groups` is `minikafka groups`. Everything heavy loads inside the command that needs it."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
