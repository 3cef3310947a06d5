"""Settings for the whole test session."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Brokers that tests start pick a free port for their web console: several run at once,
    and a developer's own broker may hold the default 8080. (Set before any broker starts;
    children inherit the environment.)"""
    os.environ.setdefault("MINIKAFKA_UI_PORT", "0")
