"""The whole shop as child processes against one broker: what the demo, tests and bench start."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence

import httpx

from .ports import free_port
from .processes import ManagedProcess
from .settings import ShopPaths

CONSUMERS = ("inventory", "orders", "notifications")


class ShopStack:
    """The API and the three consuming services, each a `minikafka shop …` child process, on
one broker and one schema registry.

    `service_args` go to every consuming service (e.g. a short session timeout in tests);
    `extra` to one kind (e.g. `{"inventory": ["--catalogue", path]}`).
    """

    def __init__(self, paths: ShopPaths, bootstrap: str, registry: str, api_port: int = 0,
                 service_args: Sequence[str] = (),
                 extra: dict[str, Sequence[str]] | None = None) -> None:
        self.paths = paths
        self.bootstrap = bootstrap
        self.registry = registry
        self.api_port = api_port or free_port()
        self.service_args = list(service_args)
        self.extra = extra or {}
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _argv(self, command: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "minikafka", "shop", command, *args,
                *self.extra.get(command, ())]

    def _brokers(self) -> tuple[str, ...]:
        return "--bootstrap-server", self.bootstrap, "--schema-registry", self.registry

    def add(self, kind: str, label: str | None = None) -> ManagedProcess:
        """Start one more process of `kind` (a second instance gets its own `label`)."""
        label = label or kind
        if kind == "api":
            argv = self._argv("api", *self._brokers(),
                              "--orders-db", str(self.paths.db("orders")),
                              "--inventory-db", str(self.paths.db("inventory")),
                              "--port", str(self.api_port))
        else:
            argv = self._argv(kind, *self._brokers(),
                              "--db", str(self.paths.db(kind)), *self.service_args)
        process = ManagedProcess(label, argv, self.paths.logs / f"{label}.log").start()
        self.processes[label] = process
        return process

    def start(self, timeout: float = 30.0) -> ShopStack:
        for kind in (*CONSUMERS, "api"):
            self.add(kind)
        self.wait_for_api(timeout)
        return self

    def wait_for_api(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.processes["api"].running:
                raise RuntimeError(f"the API exited:\n{self.processes['api'].log()[-2000:]}")
            try:
                if httpx.get(f"{self.api_url}/openapi.json", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the API did not answer on {self.api_url} within {timeout} s")

    def generator(self, count: int | None, rate: float, seed: int = 42,
                  restock_below: int | None = None) -> ManagedProcess:
        """The order generator; `restock_below` overrides its restocking mark (0: never)."""
        args = ["--api", self.api_url, "--state", str(self.paths.generator_state),
                "--rate", str(rate), "--seed", str(seed)]
        if restock_below is not None:
            args += ["--restock-below", str(restock_below)]
        if count is not None:
            args += ["--count", str(count)]
        process = ManagedProcess("generator", self._argv("generator", *args),
                                 self.paths.logs / "generator.log").start()
        self.processes["generator"] = process
        return process

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the generator and the API first (no new orders), then the services."""
        order = sorted(self.processes, key=lambda n: (n != "generator", n != "api"))
        for name in order:
            self.processes[name].stop(sig)
