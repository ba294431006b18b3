"""Run the real service as a uvicorn subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import TEST_AUDIT_KEY

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 180.0) -> None:
        self.log_path = self.data_dir / f"server-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "backend.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        path = "/api/v1/health/ready" if wait_ready else "/api/v1/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handlers run."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_mb(self) -> float:
        """Resident memory of the server process tree."""
        import psutil

        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20

    def log_tail(self, n: int = 4000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-n:]
        return ""


def make_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDSIGHT_", "PYTEST"))}
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{data_dir / 'e2e.db'}",
            "LOG_LEVEL": "WARNING",
            "CORPUS_AUTOBUILD": "false",
            # Anonymous uploads from 127.0.0.1 share one bucket; the limit has its own tests.
            "RATE_LIMIT_ANALYZE": "100000/hour",
            "RATE_LIMIT_CHAT": "100000/hour",
            "PYTHONUNBUFFERED": "1",
            "AUDIT_HMAC_KEY": TEST_AUDIT_KEY,
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running_server(data_dir: Path, **env_extra: str) -> Iterator[Server]:
    port = free_port()
    server = Server(
        url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        env=make_env(data_dir, **env_extra),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
