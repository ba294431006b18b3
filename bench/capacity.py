"""Read capacity against the framework's own ceiling, measured side by side in one run.

Four closed-loop loads of --connections keep-alive connections for --duration seconds each,
made by wrk (Debian: `apt-get install wrk`):

1. hello-world: a bare FastAPI app (bench/hello_app.py) under uvicorn with MedSight's own server
   options (`backend.cli.server_options`): the ceiling on this machine;
2. health: MedSight's `GET /api/v1/health`;
3. result (url): a signed-in, cached `GET /api/v1/analyze/result/{id}?heatmap=url`;
4. result (inline): the same read with the heatmap inline (the seed's default form).

MedSight runs as in production (AUTH_REQUIRED=true, bearer token, INFO logs, audited reads),
on SQLite by default (--database-url for PostgreSQL). Each load runs --rounds times,
interleaved, and the medians are reported with their ratio to hello-world. Beside each load's
requests per second, the server process's CPU time per request (all its threads, from /proc):
on a machine shared with other work the req/s ratios move with whoever else runs, while
hello-world's CPU per request over a load's ("x hello cpu") says what the ratio would be if
the server had the cores to itself.

    .venv/bin/python -m bench.capacity                 # 2 rounds x 10 s per load
    .venv/bin/python -m bench.capacity --duration 15 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "capacity-bench-password"  # noqa: S105 - a throwaway bench account
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Load:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors
    server_cpu_ms: float | None = None  # the server process's CPU (all threads) per request


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    name: str,
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    headers: dict[str, str] | None = None,
    server_pid: int | None = None,
) -> Load:
    """One wrk run (--latency) parsed into a Load (with the server's CPU per request)."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(x) for x in found.groups())
    per_request = round(cpu * 1000 / total, 4) if cpu is not None and total else None
    return Load(name, rps, p50, p99, total, errors, per_request)


@contextmanager
def serve(target: str, env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`target` (an ASGI import path) under uvicorn with MedSight's server options.

    Yields its URL and process id.
    """
    sys.path.insert(0, str(REPO))
    from tests.e2e.server import free_port

    port = free_port()
    code = (
        "import uvicorn; from backend.cli import server_options; "
        "from backend.config import get_settings; "
        f"uvicorn.run({target!r}, host='127.0.0.1', port={port}, "
        "**server_options(get_settings()))"
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        probe = "/" if target.startswith("bench.") else "/api/v1/health/ready"
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + probe, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def finished_result(url: str) -> tuple[str, str]:
    """Register, sign in, analyse a fixture X-ray; returns (bearer token, session id)."""
    from tests.conftest import fixture_images

    email = f"capacity-{os.getpid()}@example.org"
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        image = fixture_images()[0]
        accepted = client.post(
            "/api/v1/analyze",
            headers=headers,
            files={"image": (image.name, image.read_bytes(), "image/png")},
            data={"symptoms": "Dry cough and fever for three days."},
        )
        accepted.raise_for_status()
        ids = accepted.json()
        status = client.get(
            f"/api/v1/analyze/status/{ids['task_id']}", params={"wait": 30}, headers=headers
        ).json()["status"]
        if status not in {"complete", "partial"}:
            raise RuntimeError(f"the seed analysis ended {status}")
        for form in ("url", "inline"):  # warm the result cache
            client.get(
                f"/api/v1/analyze/result/{ids['session_id']}",
                params={"heatmap": form},
                headers=headers,
            ).raise_for_status()
    return str(token), str(ids["session_id"])


def run(args: argparse.Namespace) -> dict[str, object]:
    sys.path.insert(0, str(REPO))
    from tests.e2e.server import make_env

    loads: dict[str, list[Load]] = {}
    with tempfile.TemporaryDirectory(prefix="medsight-capacity-") as tmp:
        data_dir = Path(tmp)
        env = make_env(
            data_dir,
            args.database_url,
            AUTH_REQUIRED="true",
            LOG_LEVEL="INFO",
            RATE_LIMIT_ANALYZE="1000000/hour",
            RATE_LIMIT_LOGIN="1000000/minute",
            CORPUS_AUTOBUILD="false",
        )
        opts = {"duration": args.duration, "connections": args.connections, "threads": 2}
        for _ in range(args.rounds):
            with serve("bench.hello_app:app", env, data_dir / "hello.log") as (url, pid):
                wrk("warm-up", url + "/", **{**opts, "duration": 2})
                loads.setdefault("hello-world", []).append(
                    wrk("hello-world", url + "/", server_pid=pid, **opts)
                )
            with serve("backend.main:app", env, data_dir / "medsight.log") as (url, pid):
                token, session_id = finished_result(url)
                auth = {"Authorization": f"Bearer {token}"}
                result = f"{url}/api/v1/analyze/result/{session_id}"
                wrk("warm-up", url + "/api/v1/health", **{**opts, "duration": 2})
                runs = (
                    ("health", url + "/api/v1/health", None),
                    ("result (heatmap=url)", result + "?heatmap=url", auth),
                    ("result (inline)", result, auth),
                )
                for name, target, headers in runs:
                    loads.setdefault(name, []).append(
                        wrk(name, target, headers=headers, server_pid=pid, **opts)
                    )
        if args.server_log:
            shutil.copyfile(data_dir / "medsight.log", args.server_log)
    ceiling = statistics.median(load.rps for load in loads["hello-world"])
    ceiling_cpu = _median_cpu(loads["hello-world"])
    rows = []
    for name, runs in loads.items():
        rps = statistics.median(load.rps for load in runs)
        cpu = _median_cpu(runs)
        rows.append(
            {
                "name": name,
                "rps": round(rps, 1),
                "ratio": round(rps / ceiling, 3),
                "server_cpu_ms": cpu,
                # What the ratio would be if the server alone had the CPU: hello-world's CPU
                # per request over this load's (robust to the machine being shared).
                "cpu_ratio": round(ceiling_cpu / cpu, 3) if cpu and ceiling_cpu else None,
                "p50_ms": round(statistics.median(load.p50_ms for load in runs), 2),
                "p99_ms": round(statistics.median(load.p99_ms for load in runs), 2),
                "errors": sum(load.errors for load in runs),
                "runs": [asdict(load) for load in runs],
            }
        )
    return {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "database": args.database_url or "sqlite",
        "connections": args.connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "rows": rows,
    }


def _median_cpu(runs: list[Load]) -> float | None:
    values = [load.server_cpu_ms for load in runs if load.server_cpu_ms is not None]
    return round(statistics.median(values), 4) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per load")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved repetitions")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the report here")
    parser.add_argument("--server-log", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk")
        return 2
    report = run(args)
    print(
        f"{'load':<22}{'req/s':>10}{'x hello':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'cpu ms/req':>12}{'x hello cpu':>13}"
    )
    for row in report["rows"]:  # type: ignore[attr-defined]
        cpu, cpu_ratio = row["server_cpu_ms"], row["cpu_ratio"]
        print(
            f"{row['name']:<22}{row['rps']:>10.1f}{row['ratio']:>9.3f}"
            f"{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['errors']:>8}"
            f"{cpu if cpu is not None else float('nan'):>12.3f}"
            f"{cpu_ratio if cpu_ratio is not None else float('nan'):>13.3f}"
        )
    print(f"load average {report['load_average']}, {report['machine']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if any(row["errors"] for row in report["rows"]) else 0  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
