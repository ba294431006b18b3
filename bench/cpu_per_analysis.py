"""Server CPU per analysis, by thread, against a real server on embedded defaults (Linux).

Throughput on a small machine is CPU per analysis, and the wall clock hides where it goes. This
starts a server, warms it up, runs --n analyses from 8 clients (submit → long-poll → result, as
bench/pipeline.py does) and reads every server thread's CPU time from /proc before and after:

    .venv/bin/python -m bench.cpu_per_analysis [--n 300] [--env KEY=VALUE ...]

Threads are grouped by their kernel name: the event loop (the main thread), the inference
threads (`medsight-infer`, and threads they start, such as the NLP stage's embedding thread),
and every other thread (database driver, I/O, native pools such as ONNX Runtime's or BLAS's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.pipeline import one
from tests.conftest import fixture_images
from tests.e2e.server import Server, free_port, make_env

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid → (thread name as the kernel knows it, user+system CPU seconds)."""
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def role(tid: int, pid: int, comm: str) -> str:
    if tid == pid:
        return "event loop (main thread)"
    if comm.startswith("medsight-infer"):
        return "inference threads (medsight-infer)"
    return "other threads (database, I/O, native pools)"


async def drive(url: str, images: list[bytes], n: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        pending = list(range(n))

        async def worker() -> None:
            while pending:
                i = pending.pop()
                await one(client, images[i % len(images)])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(8)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    images = [p.read_bytes() for p in fixture_images()]
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = make_env(Path(tmp), WORKER_CONCURRENCY="8", LOG_LEVEL="WARNING", **extra)
        server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=Path(tmp), env=env)
        server.start(timeout=300)
        try:
            if server.proc is None:
                raise RuntimeError("the server did not start")
            pid = server.proc.pid
            asyncio.run(drive(server.url, images, 24))  # warm-up
            before = thread_cpu(pid)
            elapsed = asyncio.run(drive(server.url, images, args.n))
            after = thread_cpu(pid)
        finally:
            server.stop()
    groups: Counter[str] = Counter()
    for tid, (comm, cpu) in after.items():
        groups[role(tid, pid, comm)] += cpu - before.get(tid, (comm, 0.0))[1]
    total = sum(groups.values())
    print(
        f"# server CPU per analysis  {time.strftime('%Y-%m-%d %H:%M')}  "
        f"{platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{args.n} analyses, 8 clients: {args.n / elapsed:.1f}/s")
    for name, cpu in groups.most_common():
        print(f"  {name:<46} {1000 * cpu / args.n:7.1f} ms")
    print(f"  {'total':<46} {1000 * total / args.n:7.1f} ms")


if __name__ == "__main__":
    main()
