"""The project as a user gets it: a built wheel, installed read-only, served from an empty folder.

The wheel is built (not an editable install) from a copy of this tree, installed with
`pip install --no-deps --target` (its dependencies are the ones this interpreter already has),
made read-only, and served by its own `medsight` entry point from an empty working directory
with a fresh HOME: no checkout, no `../shared`, no `.env` in reach. When the tests run as root,
the server runs as `nobody`, so "read-only" holds for it (root ignores file modes).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port

REPO = Path(__file__).resolve().parents[2]
# Things a wheel build must not see or copy (large, generated, or another machine's state).
_NOT_COPIED = {
    ".git",
    ".venv",
    ".venv-audit",
    "data",
    "build",
    "dist",
    "test-output",
    "node_modules",
    ".cache",
}
READY_TIMEOUT_S = 900.0  # first start exports three ONNX graphs and indexes the corpus


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == REPO
    skip = {n for n in names if n.endswith((".egg-info", "__pycache__", "_cache"))}
    return skip | ({n for n in names if n in _NOT_COPIED} if top else set())


def build_wheel(out: Path) -> Path:
    """`python -m build --wheel` on a copy of the tree (the build writes build/ and egg-info)."""
    src = out / "src"
    shutil.copytree(REPO, src, ignore=_ignore)
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), "."],
        cwd=src,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(src)
    (wheel,) = out.glob("medsight-*.whl")
    return wheel


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222 | (0o555 if path.is_dir() else 0o444))


_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@functools.cache
def _drop_privileges() -> list[str]:
    """Run the server as nobody when we are root (file modes do not stop root).

    Only when nobody can run this interpreter (a checkout under a private home folder cannot):
    then the server runs as root, and the read-only install is checked by the absence of any
    file written into it instead.
    """
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    probe = subprocess.run(
        [*_AS_NOBODY, sys.executable, "-c", "import fastapi, torch"],
        capture_output=True,
        check=False,
    )
    return _AS_NOBODY if probe.returncode == 0 else []


@dataclass
class Installed:
    root: Path  # a world-readable temp folder holding everything below
    site: Path  # the read-only install target
    workdir: Path  # the empty working directory the server runs in
    home: Path  # HOME of the server (DATA_DIR defaults under it)
    wheel: Path

    @property
    def medsight(self) -> Path:
        return self.site / "bin" / "medsight"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
        }
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    root = Path(tempfile.mkdtemp(prefix="medsight-wheel-"))
    try:
        root.chmod(0o755)
        wheel = build_wheel(root / "dist")
        site = root / "site"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile"]
            + ["--target", str(site), str(wheel)],
            check=True,
            capture_output=True,
        )
        _make_read_only(site)
        workdir, home = root / "empty", root / "home"
        workdir.mkdir()
        home.mkdir()
        if _drop_privileges():
            os.chown(home, 65534, 65534)
        workdir.chmod(0o555)
        yield Installed(root=root, site=site, workdir=workdir, home=home, wheel=wheel)
    finally:
        for path in [root, *root.rglob("*")]:  # read-only folders cannot be emptied otherwise
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Served:
    url: str
    installed: Installed
    log: Path

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def _run_as_server(installed: Installed, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [*_drop_privileges(), str(installed.medsight), *args],
        cwd=installed.workdir,
        env=installed.env(),
        start_new_session=True,
        **kw,
    )


@pytest.fixture(scope="session")
def served(installed: Installed) -> Iterator[Served]:
    """The installed wheel: migrated, serving on a free loopback port, models and corpus ready."""
    migrate = _run_as_server(installed, ["db", "upgrade"], stdout=subprocess.PIPE)
    out, _ = migrate.communicate(timeout=300)
    assert migrate.returncode == 0, out
    port = free_port()
    log = installed.root / "server.log"
    with open(log, "wb") as fh:
        proc = _run_as_server(
            installed,
            ["serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    served = Served(url=f"http://127.0.0.1:{port}", installed=installed, log=log)
    try:
        wait_ready_and_corpus(served, proc)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)


def wait_ready_and_corpus(served: Served, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{served.log_tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(served.url + "/api/v1/health/ready", timeout=10)
            body = response.json()
            corpus = body.get("checks", {}).get("corpus", {})  # type: ignore[union-attr]
            if corpus.get("state") in {"failed", "missing"}:
                raise AssertionError(f"corpus {corpus}:\n{served.log_tail()}")
            if response.status_code == 200 and corpus.get("state") == "ready":
                return
        time.sleep(1)
    raise TimeoutError(f"not ready in {READY_TIMEOUT_S}s: {body}\n{served.log_tail()}")
