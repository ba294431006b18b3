"""README's "First request" walkthrough, run as written against the installed wheel's server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO, Served

pytestmark = pytest.mark.slow


def walkthrough_blocks(readme: Path = REPO / "README.md") -> list[str]:
    """The ```bash blocks of the "## First request" section."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## First request", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_readme_has_front_matter_for_spaces_and_stays_short() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    front = text.split("---\n", 2)[1]
    assert "sdk: docker" in front and "app_port: 7860" in front
    assert len(text.splitlines()) <= 250
    assert "HF_TOKEN" not in text


def test_first_request_walkthrough_runs(served: Served) -> None:
    if not (shutil.which("jq") and shutil.which("curl")):
        if os.environ.get("CI"):
            pytest.fail("curl and jq are needed (apt-get install curl jq)")
        pytest.skip("curl and jq are not installed")
    (script,) = walkthrough_blocks()
    sample = served.installed.site / "backend" / "imaging" / "samples" / "chest-xray.png"
    workdir = Path(tempfile.mkdtemp(prefix="medsight-readme-"))
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(workdir),
                "MEDSIGHT": served.url,
                "IMG": str(sample),
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = run.stdout
        assert run.returncode == 0, f"{out}\n{run.stderr}"
        assert "register: 202" in out  # the same answer for new and existing addresses
        assert re.search(r"^(complete|partial)$", out, flags=re.M), out
        assert '"overall_status": "COMPLETE"' in out, out
        assert "%PDF-" in out
        assert "Bundle" in out
        # The chat cited at least one source (its title printed by the last line).
        tail = out.rstrip().splitlines()[-1]
        assert tail.strip() and not tail.strip().isdigit(), out
        assert (workdir / "report.pdf").read_bytes().startswith(b"%PDF")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
