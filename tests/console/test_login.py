"""The console asks who you are (issue 17): with a login required (`--ui-auth login`, as when
the console listens beyond loopback), pages redirect to the login form, the API and /metrics
answer 401; a SCRAM user's password opens a session (or HTTP Basic, for scrapers); and the
console then acts as that user, under the broker's ACLs."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minikafka.cli.main import main as cli

from .conftest import Console, screenshot, start_console_broker


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    data = tmp_path_factory.mktemp("guarded") / "data"
    for user in ("admin", "alice"):
        assert cli(["users", "add", user, "--password", f"{user}-secret", "--mechanism",
                    "SCRAM-SHA-256", "--iterations", "4096", "--data-dir", str(data)]) == 0
    assert cli(["acls", "add", "--data-dir", str(data), "--topic", "*", "--principal",
                "User:alice", "--operation", "describe"]) == 0
    started = start_console_broker(data, "--ui-auth", "login", "--authorizer-class-name",
                                   "StandardAuthorizer", "--super-users", "User:admin")
    yield started
    assert started.broker.stop() == 0, started.broker.log()


def status(console: Console, method: str, path: str, body: Any = None,
           headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(
        console.url + path, data=None if body is None else json.dumps(body).encode(),
        method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def login(console: Console, user: str) -> dict[str, str]:
    code, headers, _ = status(console, "POST", "api/login",
                              {"username": user, "password": f"{user}-secret"})
    assert code == 204
    return {"Cookie": headers["set-cookie"].split(";")[0]}


def test_anonymous_requests_are_sent_to_log_in(guarded: Console) -> None:
    assert status(guarded, "GET", "api/overview")[0] == 401
    code, headers, _ = status(guarded, "GET", "metrics")
    assert code == 401 and headers["www-authenticate"].startswith("Basic")
    code, headers, _ = status(guarded, "GET", "")
    assert code == 303 and headers["location"] == "/login"
    assert status(guarded, "GET", "login")[0] == 200
    assert status(guarded, "POST", "api/login", {"username": "alice",
                                                 "password": "wrong"})[0] == 401


def test_a_session_or_basic_credentials_let_a_user_in(guarded: Console) -> None:
    code, _, body = status(guarded, "GET", "api/whoami", headers=login(guarded, "alice"))
    assert code == 200 and json.loads(body) == {"principal": "User:alice",
                                                 "may_create_topics": False}
    basic = base64.b64encode(b"admin:admin-secret").decode()
    code, _, body = status(guarded, "GET", "metrics", headers={"Authorization": f"Basic {basic}"})
    assert code == 200 and b"minikafka" in body
    wrong = base64.b64encode(b"admin:nope").decode()
    assert status(guarded, "GET", "metrics", headers={"Authorization": f"Basic {wrong}"})[0] == 401


def test_the_console_acts_under_the_users_acls(guarded: Console) -> None:
    alice, admin = login(guarded, "alice"), login(guarded, "admin")
    code, _, body = status(guarded, "POST", "api/topics", {"name": "by-alice"}, alice)
    assert code == 403 and json.loads(body)["code"] == "TOPIC_AUTHORIZATION_FAILED"
    assert status(guarded, "POST", "api/topics", {"name": "by-admin"}, admin)[0] == 201
    code, _, body = status(guarded, "DELETE", "api/topics/by-admin", headers=alice)
    assert code == 403
    records = "api/topics/by-admin/records?partition=0"
    assert status(guarded, "GET", records, headers=alice)[0] == 403  # DESCRIBE is not READ
    assert status(guarded, "GET", records, headers=admin)[0] == 200


def test_logging_in_with_the_browser(guarded: Console, page: Any) -> None:
    page.goto(guarded.url)
    page.wait_for_url("**/login")
    page.fill("#login-user", "admin")
    page.fill("#login-password", "wrong")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:has-text('wrong user name or password')")
    page.fill("#login-password", "admin-secret")
    page.click("#login-submit")
    page.wait_for_url(guarded.url)
    page.wait_for_selector("#broker-address:not(:empty)")
    screenshot(page, "after-login")


def test_login_is_off_on_loopback_by_default(tmp_path: Path) -> None:
    from minikafka.broker.config import BrokerConfig
    from minikafka.console.auth import login_required

    assert not login_required(BrokerConfig())
    assert login_required(BrokerConfig(host="0.0.0.0"))
    assert not login_required(BrokerConfig(host="0.0.0.0", ui_auth="none"))
    assert login_required(BrokerConfig(ui_auth="login"))


def test_the_console_offers_only_what_the_acls_allow(guarded: Console, page: Any) -> None:
    """alice may only DESCRIBE topics: no create form, no delete or purge, no change, no
    produce form; admin sees all."""
    assert status(guarded, "POST", "api/topics", {"name": "offered"},
                  login(guarded, "admin"))[0] == 201
    for user, shown in (("alice", False), ("admin", True)):
        page.context.clear_cookies()
        page.goto(guarded.url + "login")
        page.fill("#login-user", user)
        page.fill("#login-password", f"{user}-secret")
        page.click("#login-submit")
        page.wait_for_url(guarded.url)
        page.goto(guarded.url + "#/topics/offered")
        page.wait_for_function("document.getElementById('partition-count')?.min > '0'")
        page.wait_for_selector("#head-actions button")  # offered once the topic is known
        for selector in ("#delete-topic", "#purge-topic", "#add-partitions", "#set-retention"):
            assert page.is_visible(selector) is shown, (user, selector)
        page.goto(guarded.url + "#/messages?topic=offered")  # producing needs WRITE
        page.wait_for_selector("#produce-partition option", state="attached")
        page.wait_for_selector("#produce-panel", state="visible" if shown else "hidden")
        page.goto(guarded.url + "#/topics")
        page.wait_for_function("fetch('/api/whoami').then(() => true)")
        page.wait_for_selector("#create-topic", state="visible" if shown else "hidden")
        screenshot(page, f"topics-as-{user}")
