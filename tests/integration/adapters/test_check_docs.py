"""Every shell command in README.md, docs/proxy.md and docs/deploy.md runs (scripts/check_docs.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
REPO = Path(__file__).resolve().parents[3]


def test_every_documented_command_runs() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "check_docs.py")], cwd=REPO, text=True,
                          capture_output=True, timeout=380)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert sum(line.startswith("ok ") for line in lines) >= 15 and not any(line.startswith("FAIL") for line in lines)


def test_commands_are_extracted_from_blocks_with_continuations(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from check_docs import commands

    doc = tmp_path / "d.md"
    doc.write_text("```bash\nsemcache serve \\\n   --port 1   # note\n# or: python -m x\n# just a comment\n```\n"
                   "```python\nprint(1)\n```\n")
    assert commands(doc) == ["semcache serve --port 1", "python -m x"]
