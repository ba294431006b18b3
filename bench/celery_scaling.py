"""Analyze throughput with 1 and then 2 Celery workers against the same API, in one run.

Starts `medsight serve` (QUEUE_BACKEND=celery) and worker processes (`python -m
backend.analysis.worker`, INFERENCE_THREADS=1, OMP_NUM_THREADS=1, models preloaded), warms each
phase up, queues N analyses while the workers are paused (SIGSTOP), resumes them and measures
completions per second until the last one is done. Uses its own Redis database (default 13)
and flushes only that one.

    .venv/bin/python -m bench.celery_scaling [--n 40] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.server import Server, free_port, make_env  # noqa: E402

FINAL = {"complete", "partial", "failed"}
SYMPTOMS = "Dry cough and fever for three days, mild shortness of breath."


class Worker:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "wb") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backend.analysis.worker", "--hostname", f"{name}@bench"],
                cwd=REPO,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready in {timeout}s")

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


async def submit(
    client: httpx.AsyncClient, image: bytes, n: int, symptoms: str | None
) -> list[str]:
    tasks: list[str] = []
    data = {"symptoms": symptoms} if symptoms else {}
    for _ in range(n):
        response = await client.post(
            "/api/v1/analyze", files={"image": ("cxr.png", image, "image/png")}, data=data
        )
        response.raise_for_status()
        tasks.append(response.json()["task_id"])
    return tasks


async def wait_all(client: httpx.AsyncClient, tasks: list[str], wait_s: float) -> dict[str, int]:
    """Wait until every task is final; poll only the oldest pending one (cheap for the API)."""
    deadline = time.monotonic() + wait_s
    pending = list(tasks)
    outcomes: dict[str, int] = {}
    while pending and time.monotonic() < deadline:
        status = (await client.get(f"/api/v1/analyze/status/{pending[0]}")).json()["status"]
        if status in FINAL:
            outcomes[status] = outcomes.get(status, 0) + 1
            pending.pop(0)
            continue
        await asyncio.sleep(0.05)
    if pending:
        raise TimeoutError(f"{len(pending)} analyses unfinished after {wait_s}s")
    return outcomes


async def measure(
    args: argparse.Namespace, url: str, image: bytes, start_worker: Any
) -> dict[str, Any]:
    symptoms = None if args.no_symptoms else SYMPTOMS
    phases = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for count in (1, 2):
            workers = start_worker(count)
            # Warm-up: every worker has run jobs (first inferences are slower).
            await wait_all(client, await submit(client, image, 3 * count, symptoms), args.timeout)
            # The backlog is queued while the workers are stopped, so the clock measures the
            # workers draining it, not the API accepting uploads one by one.
            for worker in workers:
                worker.signal(signal.SIGSTOP)
            try:
                tasks = await submit(client, image, args.n, symptoms)
            finally:
                load_before = os.getloadavg()[0]
                started = time.perf_counter()
                for worker in workers:
                    worker.signal(signal.SIGCONT)
            outcomes = await wait_all(client, tasks, args.timeout)
            elapsed = time.perf_counter() - started
            phases.append(
                {
                    "workers": count,
                    "analyses": args.n,
                    "seconds": round(elapsed, 2),
                    "per_second": round(args.n / elapsed, 3),
                    "outcomes": outcomes,
                    "load_average_before": round(load_before, 1),
                }
            )
            print(json.dumps(phases[-1]), flush=True)
    return {
        "phases": phases,
        "speedup_2_vs_1": round(phases[1]["per_second"] / phases[0]["per_second"], 2),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus",
        "database": "postgresql" if (args.database_url or "").startswith("postgres") else "sqlite",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="Analyses per phase")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--no-symptoms", action="store_true", help="Vision only (no NLP stage)")
    parser.add_argument(
        "--image",
        default=str(REPO.parent / "shared" / "data" / "cxr-dev" / "fixtures" / "dev-0003.png"),
    )
    args = parser.parse_args()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    queue = f"medsight-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="medsight-scaling-") as tmp:
        data_dir = Path(tmp)
        common = {
            "QUEUE_BACKEND": "celery",
            "REDIS_URL": args.redis_url,
            "CELERY_QUEUE": queue,
            "RATE_LIMIT_ANALYZE": "1000000/hour",
            "LOG_LEVEL": "WARNING",
        }
        api_env = make_env(data_dir, args.database_url, PRELOAD_MODELS="false", **common)
        worker_env = make_env(
            data_dir,
            args.database_url,
            PRELOAD_MODELS="true",
            INFERENCE_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            VISION_BATCH_MAX="1",
            **common,
        )
        worker_env["LOG_LEVEL"] = "INFO"  # the " ready." line tells us it consumes
        port = free_port()
        server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir, env=api_env)
        workers: list[Worker] = []

        def start_worker(count: int) -> list[Worker]:
            while len(workers) < count:
                name = f"w{len(workers) + 1}"
                worker = Worker(name, worker_env, data_dir / f"{name}.log")
                workers.append(worker)
                worker.wait_ready()
            return list(workers)

        server.start(wait_ready=False)
        try:
            report = asyncio.run(
                measure(args, server.url, Path(args.image).read_bytes(), start_worker)
            )
        finally:
            for worker in workers:
                worker.stop()
            server.stop()
            redis.Redis.from_url(args.redis_url).flushdb()
    report["redis_db"] = urlsplit(args.redis_url).path
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
