"""The package is described in pyproject.toml; this adds the compiled modules.

mypyc (shipped with mypy) compiles the modules listed under `[tool.minikafka.build] mypyc` in
pyproject.toml: the record validator, which walks the records of every incoming batch (~25x
faster than interpreted, which keeps batched appends above 3 M records/s), the codec and
record-header code every request goes through, each request's dispatch and count (the
connection's Dispatcher, the broker context and its ACL check, the request metrics), a
Produce's path through the broker (its handler, the service layer and the log's partitions,
their lookup, segments and indexes: an append's bookkeeping), and a Fetch's long poll (its
handler, fetch sessions, and the filing and waking of polls in broker/appends.py). Without
mypyc or a C compiler (or with MINIKAFKA_PURE_PYTHON=1) the same modules run as Python:
installing never fails for want of a compiler.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the compiled modules if this machine can; otherwise say so and go on."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers: setuptools' errors vary
            print(f"minikafka: not compiling {', '.join(COMPILED)} ({exc}); they run as Python")

    def copy_extensions_to_source(self) -> None:
        """Into src/ (editable installs, --inplace), each stamped with this build's time:
        mypyc compiled them from the sources as they are now, but rewrites only what changed,
        and setuptools copies with the old times, which would make a module look older than
        its source (minikafka.compiled.stale)."""
        super().copy_extensions_to_source()
        for ext in self.extensions:
            inplace = Path("src", self.get_ext_filename(ext.name))
            if inplace.exists():
                os.utime(inplace)


with open(Path(__file__).with_name("pyproject.toml"), "rb") as f:
    COMPILED: list[str] = tomllib.load(f)["tool"]["minikafka"]["build"]["mypyc"]

ext_modules = []
if not os.environ.get("MINIKAFKA_PURE_PYTHON"):
    try:
        from mypyc.build import mypycify
    except ImportError:
        pass
    else:
        # Only these modules are checked here: the project-wide config would flag its other
        # sections.
        ext_modules = mypycify(["--no-warn-unused-configs", *COMPILED], opt_level="3",
                               group_name="minikafka")

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
