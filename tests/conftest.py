"""Settings for the whole test session."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Brokers that tests start pick free ports for their web console and schema registry:
    several run at once, and a developer's own broker may hold the defaults 8080 and 8081.
    (Set before any broker starts; children inherit the environment.)"""
    os.environ.setdefault("MINIKAFKA_UI_PORT", "0")
    os.environ.setdefault("MINIKAFKA_SCHEMA_REGISTRY_PORT", "0")
