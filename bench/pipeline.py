"""End-to-end pipeline benchmark against a real server on embedded defaults.

Prints submit→result latency (p50/p95) at 1 client, throughput at 8 concurrent clients, and the
server's peak RSS, with vision micro-batching off and on, in one run.

    .venv/bin/python -m bench.pipeline [--n1 40] [--n8 160]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import fixture_images
from tests.e2e.server import Server, free_port, make_env

ONSETS = ("two days", "three days", "a week", "ten days", "since yesterday", "five days")
COMPLAINTS = (
    "Dry cough and fever for {d}, mild shortness of breath, no chest pain.",
    "Productive cough with yellow sputum for {d}; fever and chills, right-sided pleuritic pain.",
    "Wheezing and chest tightness at night for {d}, worse with cold air. No fever.",
    "Sudden breathlessness {d} after a long flight, sharp chest pain, no cough.",
    "Night sweats, weight loss and a cough for {d}; once coughed up blood. Denies fever.",
    "Runny nose, sore throat and sneezing for {d}, mild cough, no shortness of breath.",
)


def symptom_texts() -> list[str]:
    """Distinct symptom texts, so every analysis embeds new clauses (no warm caches)."""
    texts = [c.format(d=d) for c in COMPLAINTS for d in ONSETS]
    return [f"{t} Patient {i}." for i in range(40) for t in texts]


TEXTS = symptom_texts()
_next_text = iter(range(10**9))


async def one(client: httpx.AsyncClient, image: bytes) -> float:
    """Submit, long-poll the status, read the result: what a client of the API does."""
    started = time.perf_counter()
    symptoms = TEXTS[next(_next_text) % len(TEXTS)]
    response = await client.post(
        "/api/v1/analyze", files={"image": ("x.png", image)}, data={"symptoms": symptoms}
    )
    response.raise_for_status()
    accepted = response.json()
    while True:
        status = (
            await client.get(f"/api/v1/analyze/status/{accepted['task_id']}", params={"wait": 30})
        ).json()["status"]
        if status not in {"queued", "running"}:
            break
    if status != "complete":
        raise RuntimeError(f"analysis ended {status}")
    result = await client.get(f"/api/v1/analyze/result/{accepted['session_id']}")
    result.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def run_load(url: str, images: list[bytes], n1: int, n8: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for i in range(5):  # warm-up: first-use costs are not what we measure
            await one(client, images[i % len(images)])
        latencies = [await one(client, images[i % len(images)]) for i in range(n1)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n8):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await one(client, images[i % len(images)])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(8)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "throughput_per_s": n8 / elapsed,
    }


def measure(batch_max: int, images: list[bytes], n1: int, n8: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = make_env(
            Path(tmp),
            VISION_BATCH_MAX=str(batch_max),
            VISION_BATCH_WAIT_MS="4",
            WORKER_CONCURRENCY="8",
            LOG_LEVEL="WARNING",
        )
        server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=Path(tmp), env=env)
        server.start(timeout=300)
        peak = [server.rss_mb()]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], server.rss_mb())
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            stats = asyncio.run(run_load(server.url, images, n1, n8))
        finally:
            stop.set()
            sampler.join()
            server.stop()
        stats["peak_rss_mb"] = peak[0]
        return stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n1", type=int, default=40, help="sequential analyses (1 client)")
    parser.add_argument("--n8", type=int, default=160, help="analyses across 8 clients")
    args = parser.parse_args()
    images = [p.read_bytes() for p in fixture_images()]
    machine = platform.processor() or platform.machine()
    print(f"# pipeline benchmark  {time.strftime('%Y-%m-%d %H:%M')}  {machine}")
    print("mode            p50 ms   p95 ms   analyses/s (8 clients)   peak RSS MB")
    results = {}
    for label, batch in (("batching off", 1), ("batching on", 8)):
        r = measure(batch, images, args.n1, args.n8)
        results[label] = r
        print(
            f"{label:<14} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['throughput_per_s']:14.1f}"
            f" {r['peak_rss_mb']:18.0f}"
        )
    ratio = results["batching on"]["throughput_per_s"] / results["batching off"]["throughput_per_s"]
    print(f"throughput ratio on/off: {ratio:.2f}")


if __name__ == "__main__":
    main()
