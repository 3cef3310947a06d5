"""Where a shop keeps its state and which broker it talks to.

Only the standard library: the CLI imports this at start to build its options, before (and
without) the shop's own dependencies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
REGISTRY_ENV = "SCHEMA_REGISTRY_URL"  # as `minikafka schemas` and Confluent's tools take it
DEFAULT_REGISTRY = "http://127.0.0.1:8081"


def default_bootstrap() -> str:
    return os.environ.get(BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP)


def default_registry() -> str:
    return os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY


@dataclass(frozen=True)
class ShopPaths:
    """Where one shop keeps its state: the broker's log (when we run it) and each database."""

    root: Path

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    def db(self, service: str) -> Path:
        return self.root / f"{service}.db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def generator_state(self) -> Path:
        return self.root / "generator.json"
