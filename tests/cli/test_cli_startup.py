"""What the CLI loads at start, and the one-line error when an optional part is not installed.

Each check runs in a fresh interpreter: this test process has long since imported everything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from minikafka.extras import EXTRAS

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
IMPORTED_AS = {"protobuf": "google.protobuf"}  # distributions whose module has another name


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_the_cli_starts_on_the_standard_library_alone() -> None:
    run = python("import json, sys; from minikafka.cli import build_parser; build_parser(); "
                 "print(json.dumps(sorted(sys.modules)))")
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout))
    third_party = {name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names)
    assert third_party <= {"minikafka", "__main__", "_distutils_hack", "sitecustomize"}
    ours = {name for name in loaded if name.startswith("minikafka.")}
    assert not {name for name in ours
                if name.startswith(("minikafka.client", "minikafka.log", "minikafka.console"))
                or (name.startswith("minikafka.shop.")
                    and name not in ("minikafka.shop.cli", "minikafka.shop.settings"))}


@pytest.mark.parametrize(("blocked", "argv", "extra"), [
    ("httpx", ["demo", "--no-ui", "--orders", "1", "--data-dir", "{tmp}"], "shop"),
    ("pydantic", ["shop", "orders", "-b", "127.0.0.1:1", "--db", "{tmp}/orders.db"], "shop"),
    ("fastapi", ["serve", "--port", "0", "--data-dir", "{tmp}"], "console"),
    ("avro", ["serve", "--no-ui", "--port", "0", "--data-dir", "{tmp}"], "registry"),
])
def test_a_missing_extra_is_one_line(blocked: str, argv: list[str], extra: str,
                                     tmp_path: Path) -> None:
    # sys.modules[name] = None is how Python itself marks a module as not importable.
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    run = python(f"import sys; sys.modules[{blocked!r}] = None; from minikafka.cli import main; "
                 f"sys.exit(main({argv!r}))")
    assert run.returncode == 1
    command = " ".join(argv[:2] if argv[0] == "shop" else argv[:1])
    hints = {"console": " (or --no-ui: no console, no /metrics)",
             "registry": " (or --no-schema-registry)"}
    assert run.stderr == (f"minikafka: error: minikafka {command} needs the {extra} extra "
                          f"({blocked} not installed): pip install 'minikafka[{extra}]'"
                          + hints.get(extra, "") + "\n")
    assert not any(tmp_path.iterdir())  # it stopped before doing anything


def test_extras_name_the_modules_pyproject_installs() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]

    def modules(extra: str) -> set[str]:
        found = set()
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+(\[[^]]*\])?", requirement)
            assert name is not None
            if name.group(0).startswith("minikafka["):  # another of our extras
                for inner in name.group(1).strip("[]").split(","):
                    found |= modules(inner)
            else:
                module = name.group(0).split("[")[0].replace("-", "_").lower()
                found.add(IMPORTED_AS.get(module, module))
        return found

    assert {extra: modules(extra) for extra in EXTRAS} == {
        extra: set(names) for extra, names in EXTRAS.items()}
