"""The README's examples do what the README says they do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_embedded_example_prints_every_record_it_writes(tmp_path: Path) -> None:
    section = README.read_text().split("## Embedded", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    run = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 1 + 1000  # one send, then send_many of 1000
