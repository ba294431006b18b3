"""Load test: many concurrent keep-alive connections of mixed traffic against a real server.

Each of --connections clients holds one connection and loops until --duration is over: pick an
endpoint by --mix weight, send, record, then wait an exponential think time so that all clients
together offer about --rate requests per second (0: no think time, closed loop). Analyses are
capped at --max-analyze and, by default, paced evenly over the run (--analyze-pacing even: one
every duration/max-analyze seconds; an analyze pick that is not yet due becomes a result read);
--analyze-pacing burst submits them as fast as the mix picks them. Chat is dropped when the
server has no /api/v1/chat (404). Before the clock starts, --seed analyses per account are
submitted and awaited so result reads hit finished analyses. Requests are anonymous unless
--auth token|api-key: then --accounts users are registered and each simulated user signs in as
one of them (reading only that account's analyses, as ownership requires).

    .venv/bin/python -m bench.load --serve                  # starts `medsight serve` itself
    .venv/bin/python -m bench.load --url http://127.0.0.1:8000 --connections 200 --duration 60
    .venv/bin/python -m bench.load --serve --celery-workers 1   # analyses off the API process
    .venv/bin/python -m bench.load --serve --auth token         # signed-in users, as in production

Any transport error, timeout or unexpected status counts as an error. Exit code 1 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
SYMPTOMS = "Dry cough and fever for three days, mild shortness of breath."
CHAT_QUESTION = "What does an elevated anomaly score mean for this X-ray?"
FINAL = {"complete", "partial", "failed"}
MAX_THINK_S = 2.5
EXPECTED = {"health": 200, "result": 200, "status": 200, "analyze": 202, "chat": 200}


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reasons: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    # (seconds since the clock started, latency ms) of each GET result, for the timeline.
    result_times: list[tuple[float, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def ok(self, name: str, seconds: float) -> None:
        self.latencies[name].append(seconds * 1000)
        if name == "result":
            self.result_times.append((time.monotonic() - self.started, seconds * 1000))

    def error(self, name: str, reason: str, seconds: float) -> None:
        self.errors[name] += 1
        self.reasons[name][reason[:120]] += 1
        self.latencies[name].append(seconds * 1000)


class Probe:
    """What the machine was doing while the clock ran, sampled every 10 ms.

    The generator shares the machine with the server, so a latency it measures includes its own
    event loop's delay: the loop lag (how late a 10 ms sleep wakes up) says how much. The machine's
    busy fraction (/proc/stat) and each process's CPU (/proc/PID/stat) say who used the cores.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.lag: list[tuple[float, float]] = []  # (seconds since start, ms late)
        self.busy: list[tuple[float, float]] = []  # (seconds since start, busy fraction)
        self.cpu_start: dict[str, float] = {}
        self.cpu_end: dict[str, float] = {}

    @staticmethod
    def machine_ticks() -> tuple[int, int] | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    @staticmethod
    def process_cpu_s(pid: int) -> float:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return float("nan")
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_now(self) -> dict[str, float]:
        taken = {"generator": time.process_time()}
        taken.update({name: self.process_cpu_s(pid) for name, pid in self.pids.items()})
        return taken

    async def watch(self, started: float, deadline: float) -> None:
        self.cpu_start = self.cpu_now()
        last_ticks = self.machine_ticks()
        last_busy_at = time.monotonic()
        while time.monotonic() < deadline:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.lag.append((now - started, (now - before - 0.01) * 1000))
            if now - last_busy_at >= 0.5:
                ticks = self.machine_ticks()
                if ticks and last_ticks and ticks[0] > last_ticks[0]:
                    total, idle = ticks[0] - last_ticks[0], ticks[1] - last_ticks[1]
                    self.busy.append((now - started, 1 - idle / total))
                last_ticks, last_busy_at = ticks, now
        self.cpu_end = self.cpu_now()


def by_window(series: list[tuple[float, float]], seconds: int = 5) -> dict[int, list[float]]:
    """(seconds since the clock started, value) pairs grouped by window index."""
    windows: dict[int, list[float]] = defaultdict(list)
    for at, value in series:
        windows[int(at // seconds)].append(value)
    return windows


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Account:
    """Whose requests these are: the credential header and that account's own analyses."""

    headers: dict[str, str]
    results: list[str] = field(default_factory=list)  # finished session ids
    tasks: list[str] = field(default_factory=list)  # task ids submitted during the run


@dataclass
class Shared:
    image: bytes
    symptoms: str | None
    analyze_max: int
    chat: bool
    # Seconds between analyses when they are paced (the k-th may start k * pace_s after the
    # clock started); 0: the first analyze picks of the mix use the budget up at once.
    pace_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    analyze_used: int = 0

    def may_analyze(self) -> bool:
        if self.analyze_used >= self.analyze_max:
            return False
        if self.pace_s and time.monotonic() - self.started < self.analyze_used * self.pace_s:
            return False  # not yet due: this pick becomes a result read
        self.analyze_used += 1
        return True


async def request(
    client: httpx.AsyncClient, name: str, shared: Shared, account: Account, stats: Stats
) -> None:
    started = time.perf_counter()
    try:
        if name == "health":
            response = await client.get("/api/v1/health")
        elif name == "result":
            response = await client.get(f"/api/v1/analyze/result/{random.choice(account.results)}")
        elif name == "status":
            response = await client.get(f"/api/v1/analyze/status/{random.choice(account.tasks)}")
        elif name == "analyze":
            response = await client.post(
                "/api/v1/analyze",
                files={"image": ("cxr.png", shared.image, "image/png")},
                data={"symptoms": shared.symptoms} if shared.symptoms else {},
            )
            if response.status_code == 202:
                account.tasks.append(response.json()["task_id"])
        elif name == "chat":
            body = {"message": CHAT_QUESTION, "session_id": random.choice(account.results)}
            async with client.stream("POST", "/api/v1/chat", json=body) as stream:
                text = (await stream.aread()).decode(errors="replace")
                response = stream
            if response.status_code == 200 and "event: done" not in text:
                stats.error(
                    name, "stream ended without a done event", time.perf_counter() - started
                )
                return
        else:  # pragma: no cover - the mix is validated
            raise ValueError(name)
    except httpx.HTTPError as exc:
        stats.error(name, type(exc).__name__, time.perf_counter() - started)
        return
    elapsed = time.perf_counter() - started
    if response.status_code != EXPECTED[name]:
        stats.error(name, f"HTTP {response.status_code}", elapsed)
    else:
        stats.ok(name, elapsed)


async def client_loop(
    client: httpx.AsyncClient,
    account: Account,
    names: list[str],
    weights: list[float],
    shared: Shared,
    stats: Stats,
    deadline: float,
    mean_think_s: float,
) -> None:
    # Spread the first requests over one think time so the clients do not start in lockstep.
    await asyncio.sleep(random.uniform(0, mean_think_s) if mean_think_s else 0)
    while time.monotonic() < deadline:
        name = random.choices(names, weights)[0]
        if name == "analyze" and not shared.may_analyze():
            name = "result"
        if name == "status" and not account.tasks:
            name = "result"
        started = time.monotonic()
        await request(client, name, shared, account, stats)
        if mean_think_s:
            # Capped below uvicorn's 5 s keep-alive, as a browser or proxy that knows the server's
            # idle timeout would: otherwise a reused connection can race the server's close.
            think = min(random.expovariate(1 / mean_think_s), MAX_THINK_S)
            wait = think - (time.monotonic() - started)
            if wait > 0:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))


async def seed(
    client: httpx.AsyncClient,
    account: Account,
    image: bytes,
    symptoms: str | None,
    n: int,
    wait_s: float,
) -> None:
    """Submit n analyses as the account and wait for them to finish (into account.results)."""
    accepted = []
    for _ in range(n):
        response = await client.post(
            "/api/v1/analyze",
            files={"image": ("cxr.png", image, "image/png")},
            data={"symptoms": symptoms} if symptoms else {},
            headers=account.headers,
        )
        response.raise_for_status()
        accepted.append(response.json())
    deadline = time.monotonic() + wait_s
    pending = {a["task_id"]: a["session_id"] for a in accepted}
    while pending and time.monotonic() < deadline:
        for task_id in list(pending):
            status = (
                await client.get(f"/api/v1/analyze/status/{task_id}", headers=account.headers)
            ).json()
            if status["status"] in FINAL:
                account.results.append(pending.pop(task_id))
        await asyncio.sleep(0.25)
    if pending:
        raise TimeoutError(f"{len(pending)} seed analyses did not finish in {wait_s}s")


async def make_accounts(client: httpx.AsyncClient, auth: str, n: int) -> list[Account]:
    """none: one anonymous account; token: n registered users with bearer tokens; api-key:
    the same users with API keys."""
    if auth == "none":
        # One anonymous identity shared by every connection (each anonymous client is its own
        # tenant, so reads from other connections would otherwise be 404s).
        identity = await client.post("/api/v1/auth/anonymous")
        identity.raise_for_status()
        body = identity.json()
        return [Account(headers={body["header"]: body["anonymous_id"]})]
    accounts = []
    for _ in range(n):
        email = f"load-{secrets.token_hex(6)}@example.org"
        password = secrets.token_urlsafe(18)
        body = {"email": email, "password": password, "full_name": "Load test"}
        (await client.post("/api/v1/auth/register", json=body)).raise_for_status()
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        if auth == "api-key":
            scopes = ["analyze:write", "analyze:read", "chat"]
            created = await client.post(
                "/api/v1/users/me/api-keys", json={"scopes": scopes}, headers=headers
            )
            created.raise_for_status()
            headers = {"X-API-Key": created.json()["key"]}
        accounts.append(Account(headers=headers))
    return accounts


async def probe_chat(client: httpx.AsyncClient, account: Account) -> str | None:
    """None when chat answers (this also warms it up); otherwise why it is skipped."""
    body = {"message": CHAT_QUESTION, "session_id": account.results[0]}
    async with client.stream(
        "POST", "/api/v1/chat", json=body, timeout=180, headers=account.headers
    ) as response:
        text = (await response.aread()).decode(errors="replace")
    if response.status_code == 200 and "event: done" in text:
        return None
    if response.status_code == 404 and "session" not in text.lower():
        return "skipped (no /api/v1/chat)"
    return f"skipped (warm-up answered {response.status_code}: {text[:200]!r})"


async def run(
    args: argparse.Namespace, url: str, image: bytes, pids: dict[str, int] | None = None
) -> dict[str, Any]:
    mix = dict(item.split("=") for item in args.mix.split(","))
    unknown = set(mix) - set(EXPECTED)
    if unknown:
        raise SystemExit(f"unknown endpoints in --mix: {sorted(unknown)}")
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    timeout = httpx.Timeout(args.request_timeout)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        symptoms = None if getattr(args, "no_symptoms", False) else SYMPTOMS
        auth = getattr(args, "auth", "none")
        accounts = await make_accounts(client, auth, getattr(args, "accounts", 10))
        await asyncio.gather(
            *(
                seed(client, account, image, symptoms, args.seed, wait_s=args.seed_timeout)
                for account in accounts
            )
        )
        chat_skip = await probe_chat(client, accounts[0]) if "chat" in mix else "not in --mix"
        chat = chat_skip is None
        if not chat:
            mix.pop("chat", None)
        names = list(mix)
        weights = [float(mix[n]) for n in names]
        pacing = getattr(args, "analyze_pacing", "even")
        pace_s = args.duration / args.max_analyze if pacing == "even" and args.max_analyze else 0
        shared = Shared(image, symptoms, args.max_analyze, chat, pace_s=pace_s)
        stats = Stats()
        mean_think = args.connections / args.rate if args.rate > 0 else 0.0
        # One client with one keep-alive connection per simulated user: a single pool shared by
        # hundreds of loops spent more CPU in its own bookkeeping than the server spent
        # answering (measured: the load generator used 2x the server's CPU).
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        # Simulated user i signs in as account i mod len(accounts).
        mine = [accounts[i % len(accounts)] for i in range(args.connections)]
        users = [
            httpx.AsyncClient(base_url=url, limits=one, timeout=timeout, headers=account.headers)
            for account in mine
        ]
        try:
            if args.warmup > 0:
                # Same traffic, not recorded: connections open, caches and lazy paths warm up.
                warm = Shared(image, symptoms, 0, chat)
                until = time.monotonic() + args.warmup
                await asyncio.gather(
                    *(
                        client_loop(user, account, names, weights, warm, Stats(), until, mean_think)
                        for user, account in zip(users, mine, strict=True)
                    )
                )
            started = time.monotonic()
            stats.started = shared.started = started
            deadline = started + args.duration
            probe = Probe(pids or {})
            watcher = asyncio.create_task(probe.watch(started, deadline))
            loops = [
                asyncio.create_task(
                    client_loop(user, account, names, weights, shared, stats, deadline, mean_think)
                )
                for user, account in zip(users, mine, strict=True)
            ]
            # Bounded: in-flight requests get one request timeout after the deadline, then stop.
            _, late = await asyncio.wait(loops, timeout=args.duration + args.request_timeout + 5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            elapsed = time.monotonic() - started
            await watcher
        finally:
            await asyncio.gather(*(user.aclose() for user in users), return_exceptions=True)
    report: dict[str, Any] = {
        "url": url,
        "connections": args.connections,
        "duration_s": round(elapsed, 1),
        "offered_rate_rps": args.rate,
        "analyze_pacing": getattr(args, "analyze_pacing", "even"),
        "auth": auth if auth == "none" else f"{auth} ({len(accounts)} accounts)",
        "chat": "on" if chat else chat_skip,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "endpoints": {},
    }
    total = total_errors = 0
    for name in sorted(stats.latencies):
        values = stats.latencies[name]
        total += len(values)
        total_errors += stats.errors[name]
        report["endpoints"][name] = {
            "count": len(values),
            "errors": stats.errors[name],
            "error_reasons": dict(stats.reasons[name]),
            "rps": round(len(values) / elapsed, 1),
            "p50_ms": round(percentile(values, 50), 1),
            "p95_ms": round(percentile(values, 95), 1),
            "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values), 1),
            "mean_ms": round(statistics.fmean(values), 1),
        }
    report["total"] = {"count": total, "errors": total_errors, "rps": round(total / elapsed, 1)}
    # GET result latency per 5 s window: shows whether a tail is spread or comes in bursts
    # (the analyses all arrive in the first seconds, until --max-analyze is used up).
    windows, lags, busy = (
        by_window(series) for series in (stats.result_times, probe.lag, probe.busy)
    )
    report["result_timeline"] = [
        {
            "from_s": 5 * w,
            "count": len(v),
            "p50_ms": round(percentile(v, 50), 1),
            "p99_ms": round(percentile(v, 99), 1),
            "generator_lag_p99_ms": round(percentile(lags[w], 99), 1),
            "machine_busy": round(statistics.fmean(busy[w]), 2) if busy[w] else None,
        }
        for w, v in sorted(windows.items())
    ]
    report["generator_lag_ms"] = {
        "p50": round(percentile([ms for _, ms in probe.lag], 50), 1),
        "p99": round(percentile([ms for _, ms in probe.lag], 99), 1),
    }
    # Cores each process used while the clock ran (PostgreSQL and Redis are not included).
    report["cores_used"] = {
        name: round((probe.cpu_end[name] - probe.cpu_start[name]) / elapsed, 2)
        for name in probe.cpu_start
        if name in probe.cpu_end
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(
        f"{report['connections']} connections, {report['duration_s']} s, offered "
        f"{report['offered_rate_rps'] or 'max'} req/s, analyses {report['analyze_pacing']}, "
        f"auth {report['auth']}, "
        f"chat {report['chat']}; {report['machine']}"
    )
    print(f"{'endpoint':<10}{'count':>8}{'errors':>8}{'rps':>8}{'p50':>9}{'p95':>9}{'p99':>9}")
    for name, row in report["endpoints"].items():
        print(
            f"{name:<10}{row['count']:>8}{row['errors']:>8}{row['rps']:>8}"
            f"{row['p50_ms']:>8.1f}m{row['p95_ms']:>8.1f}m{row['p99_ms']:>8.1f}m"
        )
        for reason, count in row["error_reasons"].items():
            print(f"{'':<10}  {count} x {reason}")
    if report.get("result_timeline"):
        timeline = report["result_timeline"]
        cells = [f"{w['from_s']}s:{w['p99_ms']:.0f}" for w in timeline]
        print("GET result p99 per 5 s window (ms): " + " ".join(cells))
        cells = [f"{w['from_s']}s:{w['generator_lag_p99_ms']:.0f}" for w in timeline]
        print("generator loop lag p99 per window (ms): " + " ".join(cells))
        cells = [
            f"{w['from_s']}s:{w['machine_busy']:.0%}"
            for w in timeline
            if w["machine_busy"] is not None
        ]
        print("machine busy per window: " + " ".join(cells))
    if report.get("cores_used"):
        used = ", ".join(f"{name} {cores:.2f}" for name, cores in report["cores_used"].items())
        print(f"cores used while the clock ran: {used}")
    t = report["total"]
    print(f"{'total':<10}{t['count']:>8}{t['errors']:>8}{t['rps']:>8}   (latencies in ms)")


@contextmanager
def served(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, int]]]:
    """Start `medsight serve` on a free loopback port with its own data dir; stop it after."""
    sys.path.insert(0, str(REPO))
    from tests.e2e.server import free_port, make_env

    with tempfile.TemporaryDirectory(prefix="medsight-load-") as tmp:
        data_dir = Path(tmp)
        env = make_env(
            data_dir,
            args.database_url,
            RATE_LIMIT_ANALYZE="1000000/hour",
            RATE_LIMIT_CHAT="1000000/hour",
            RATE_LIMIT_LOGIN="1000000/minute",
            AUTH_REQUIRED="true" if args.auth != "none" else "false",
            LOG_LEVEL="WARNING",
            # The API under load, not the local LLM: chat answers from the template tier, as in
            # the earlier rows of bench/RESULTS.md (bench.local_llm measures the model).
            CHAT_LOCAL_TIER="false",
        )
        # The RAG corpus is built once into a cache kept between runs (about a minute the first
        # time); the clock starts only when it is ready, so no run measures the build.
        env.setdefault("CHROMA_DIR", str(REPO / ".cache" / "bench-chroma"))
        env.update(dict(item.split("=", 1) for item in args.env))
        workers: list[subprocess.Popen[bytes]] = []
        if args.celery_workers:
            env.update(QUEUE_BACKEND="celery", PRELOAD_MODELS="false")
            env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
            env.setdefault("CELERY_QUEUE", f"medsight-load-{os.getpid()}")
            for index in range(args.celery_workers):
                with open(data_dir / f"worker{index}.log", "wb") as log:
                    workers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "backend.analysis.worker"],
                            cwd=REPO,
                            env={**env, "PRELOAD_MODELS": "true", "LOG_LEVEL": "INFO"},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                            preexec_fn=(lambda: os.nice(args.worker_nice))
                            if args.worker_nice
                            else None,
                        )
                    )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(data_dir / "server.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1"]
                + ["--port", str(port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # Ready = migrated and the required models loaded (startup work is not measured).
            deadline = time.monotonic() + 240
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (data_dir / "server.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"medsight serve did not become ready:\n{tail}")
                logs = [
                    (data_dir / f"worker{i}.log").read_text(errors="replace")
                    for i in range(len(workers))
                ]
                # With Celery workers the API loads no models: it is ready when it answers.
                probe = "/api/v1/health" if workers else "/api/v1/health/ready"
                try:
                    answer = httpx.get(url + "/api/v1/health/ready", timeout=5)
                    corpus = answer.json().get("checks", {}).get("corpus", {}).get("state")
                    up = httpx.get(url + probe, timeout=5).status_code == 200 and corpus in {
                        None,
                        "ready",
                        "missing",
                    }
                except (httpx.HTTPError, ValueError, AttributeError):
                    up = False
                if up and all(" ready." in log for log in logs):
                    break
                time.sleep(0.5)
            pids = {"api": proc.pid} | {f"worker{i}": w.pid for i, w in enumerate(workers)}
            yield url, pids
        finally:
            for child in [proc, *workers]:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            for child in [proc, *workers]:
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait(10)
            if args.server_log:
                shutil.copyfile(data_dir / "server.log", args.server_log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=None, help="Server to load (default: --serve)")
    parser.add_argument("--serve", action="store_true", help="Start `medsight serve` itself")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the --serve server (repeat)"
    )
    parser.add_argument(
        "--celery-workers",
        type=int,
        default=0,
        help="With --serve: QUEUE_BACKEND=celery and this many `python -m backend.analysis.worker`",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="With --celery-workers: start them at this nice value (a stand-in, on one machine, "
        "for workers on their own hosts)",
    )
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=200.0, help="Offered req/s (0: closed loop)")
    parser.add_argument("--mix", default="health=25,result=50,status=10,chat=10,analyze=5")
    parser.add_argument("--max-analyze", type=int, default=60)
    parser.add_argument(
        "--auth",
        choices=("none", "token", "api-key"),
        default="none",
        help="none: anonymous (development); token / api-key: --accounts registered users, "
        "each simulated user signed in as one of them (--serve then sets AUTH_REQUIRED=true)",
    )
    parser.add_argument("--accounts", type=int, default=10, help="With --auth: how many")
    parser.add_argument(
        "--analyze-pacing",
        choices=("even", "burst"),
        default="even",
        help="even: the --max-analyze analyses are spread over --duration (one every "
        "duration/max-analyze seconds); burst: the mix's analyze share submits them as fast as "
        "it picks them (≈ 10/s at the default mix and rate, all in the first seconds)",
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="Unrecorded seconds first")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--seed-timeout", type=float, default=300.0)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument(
        "--image",
        default=str(REPO.parent / "shared" / "data" / "cxr-dev" / "fixtures" / "dev-0003.png"),
    )
    parser.add_argument("--no-symptoms", action="store_true", help="Analyses without symptoms")
    parser.add_argument("--json", default=None, help="Also write the report here")
    parser.add_argument("--server-log", default=None, help="With --serve: keep its log here")
    args = parser.parse_args()
    if args.url and args.serve:
        parser.error("--url and --serve exclude each other")
    if args.url:
        report = asyncio.run(run(args, args.url, Path(args.image).read_bytes()))
    else:
        with served(args) as (url, pids):
            report = asyncio.run(run(args, url, Path(args.image).read_bytes(), pids))
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1 if report["total"]["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
