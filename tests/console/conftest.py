"""A real broker with its web console, and a real browser (Debian's Chromium via Playwright)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brokerkit import InProcessBroker

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")
# Headless in a sandboxed machine with no network: no GPU, no sandbox, no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@dataclass
class Console:
    broker: InProcessBroker
    url: str  # http://127.0.0.1:PORT/
    kind: str = "broker"  # built into the broker, or "remote": `minikafka console -b` on it

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer; an error status raises urllib's HTTPError (read its JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.url + "metrics", timeout=10) as response:
            return response.read().decode()


def start_console_broker(data_dir: Path, *extra: str) -> Console:
    """Start a broker with its console (`minikafka serve`'s, in this process)."""
    proc = InProcessBroker(data_dir, "--group-initial-rebalance-delay-ms", "0", *extra).start()
    assert proc.console_url is not None and proc.console_url.startswith("http://"), proc.log()
    return Console(proc, proc.console_url)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    started = start_console_broker(tmp_path_factory.mktemp("console") / "data")
    yield started
    assert started.broker.stop() == 0, started.broker.log()


@pytest.fixture(scope="module")
def remote_console(console: Console, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Console]:
    """A second console, a process of its own: `minikafka console -b` on the same broker."""
    errors = tmp_path_factory.mktemp("remote-console") / "stderr"
    with errors.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "minikafka", "console", "-b",
                                 console.broker.bootstrap, "--port", "0"],
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the address, once it listens
    if " at http://" not in line:
        proc.kill()
        pytest.fail(f"minikafka console did not start: {line}{errors.read_text()}")
    yield Console(console.broker, line.rsplit(" at ", 1)[1].strip(), "remote")
    proc.terminate()
    assert proc.wait(timeout=15) == 0, errors.read_text()


@pytest.fixture(params=["broker", "remote"])
def any_console(request: pytest.FixtureRequest) -> Console:
    """Each test once against the broker's own console, once against `minikafka console -b`."""
    fixture = "console" if request.param == "broker" else "remote_console"
    found: Console = request.getfixturevalue(fixture)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium package is needed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
