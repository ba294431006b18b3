"""Read events made durable on local disk before the read is answered, then chained in the DB.

A read (a result, a PDF, a FHIR bundle) must leave an audit event that survives a crash, but it
need not wait for the shared database to commit one. Under load the database is the contended
part: while a burst of analyses was being submitted and written, the group-commit writer's
transactions took up to a few hundred milliseconds and every read waited for them (load test
GET result p99 528 ms against 25 ms without that wait, PostgreSQL + a Celery worker, 2 cores).

So each API process appends its read events to its own spool file and fsyncs (one write and one
`fdatasync` per group of events, ≈ 0.2 ms here) before the read is answered; a background task
then appends them to the hash chain in batches, in spool order, exactly as `record_audits` does
for any other writer. A crash loses nothing: on start-up every spool file whose process is gone
(its `flock` is free) is appended to the chain and removed. Every spooled event has a unique
`event_key`, so a file whose events were committed just before a crash (before the spool learnt
it) is not appended twice.

The event's `ts` is when the read happened; its place in the chain is when it was appended, so
the chain's order and its timestamps can differ by the drain delay (normally milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backend.audit.service import record_audits
from backend.db.models import AuditEvent
from backend.errors import ServiceUnavailableError
from backend.web.ids import unique_hex

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class AuditSpool:
    """One process's spool: `append` returns once the event is on disk; the chain follows.

    Events are chained at most every `drain_interval_s` (one transaction for all that arrived
    meanwhile: at 120 reads/s about 24 events per transaction instead of a few, which took the
    drain from ≈ 9 % of the event loop's busy time to ≈ 2 % in the load test's profile).
    `max_pending` bounds the events held for the database (in memory as well as on disk): when
    the database has been unreachable that long, reads fail with 503 instead of piling up.

    Backpressure: reads can arrive faster than the chain takes them (a cached result read
    answered without routing costs ≈ 0.3 ms; chaining an event is of the same order on the
    same event loop). Above `high_water` pending events, while the database is taking them,
    `append` waits (at most `backpressure_wait_s`) until the drain has brought the backlog
    under it: reads slow down to the rate the chain keeps up with, instead of the backlog
    growing until reads are refused, and the chain stays within about a second of the reads.
    """

    def __init__(
        self,
        directory: Path,
        sessionmaker: Any,
        *,
        max_batch: int = 500,
        max_pending: int = 50_000,
        high_water: int = 2_500,
        backpressure_wait_s: float = 5.0,
        drain_interval_s: float = 0.2,
        rotate_bytes: int = 4 * 2**20,
    ) -> None:
        self.directory = Path(directory)
        self.sessionmaker = sessionmaker
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.high_water = min(high_water, max_pending)
        self.backpressure_wait_s = backpressure_wait_s
        self._failures = 0  # consecutive failed chaining attempts (0: the database takes them)
        self.drain_interval_s = drain_interval_s
        self.rotate_bytes = rotate_bytes
        self.path: Path | None = None
        self._fd: int | None = None
        self._to_sync: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._sync_wake = asyncio.Event()
        self._pending: list[dict[str, Any]] = []  # on disk, not yet in the chain
        self._drain_wake = asyncio.Event()
        self._drained = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._io = asyncio.Lock()  # file writes vs truncation
        self._starting = asyncio.Lock()
        # Its own thread for write + fdatasync, so a busy default executor never delays a read.
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Chain what dead processes left behind, then open this process's file."""
        async with self._starting:
            if not self._tasks:
                await self._start()

    async def _start(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        recovered = await self.recover()
        if recovered:
            logger.info("audit spool: recovered read events", extra={"events": recovered})
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        staging = self.directory / f"{name}.new"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # Locked before it gets the name recovery looks for, so no one can take it over.
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.path = self.directory / f"{name}{SUFFIX}"
        os.rename(staging, self.path)
        _fsync_dir(self.directory)
        self._fd = fd
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="medsight-audit-spool")
        self._tasks = [
            asyncio.create_task(self._sync_loop(), name="medsight-audit-spool-sync"),
            asyncio.create_task(self._drain_loop(), name="medsight-audit-spool-drain"),
        ]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Chain what is pending (bounded by timeout_s); what is left stays on disk for later."""
        if not self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for _, done in self._to_sync:
            if not done.done():
                done.set_exception(ServiceUnavailableError("The audit log is shutting down."))
        self._to_sync.clear()
        fd, self._fd = self._fd, None
        if fd is not None:
            if not self._pending and self.path is not None:
                # Everything is chained: the file has nothing a later start would need.
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            os.close(fd)  # releases the lock: a later start recovers whatever is left
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # --- appending ---------------------------------------------------------------------------

    async def append(self, **event: Any) -> None:
        """Spool one event (record_audit's keyword arguments); return once it is on disk."""
        if self._fd is None:
            await self.start()
        if self._backlog() >= self.high_water and not self._failures:
            # The database takes events, only slower than they come: wait for the drain.
            async with self._drained:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._drained.wait_for(
                            lambda: self._backlog() < self.high_water or bool(self._failures)
                        ),
                        self.backpressure_wait_s,
                    )
        if self._backlog() >= self.max_pending:
            raise ServiceUnavailableError(
                "The audit log cannot reach the database; reads are refused until it can.",
                headers={"Retry-After": "30"},
            )
        record = {
            "event_key": unique_hex(),
            "ts": datetime.now(UTC).isoformat(),
            **event,
        }
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_sync.append((record, done))
        self._sync_wake.set()
        await done

    async def _sync_loop(self) -> None:
        """Group commit to the file: one write + fdatasync for everything queued meanwhile."""
        while True:
            await self._sync_wake.wait()
            self._sync_wake.clear()
            batch, self._to_sync = self._to_sync, []
            if not batch:
                continue
            records = [record for record, _ in batch]
            try:
                async with self._io:
                    # Encoded in the spool's thread too: the event loop only hands them over.
                    await asyncio.get_running_loop().run_in_executor(
                        self._executor, _encode_write_and_sync, self._require_fd(), records
                    )
            except Exception as exc:  # noqa: BLE001 - every waiting read gets the error
                logger.exception("audit spool: write failed")
                error = ServiceUnavailableError("The audit log could not be written.")
                error.__cause__ = exc
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                await self._notify()
                continue
            self._pending.extend(record for record, _ in batch)
            self._drain_wake.set()
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    # --- chaining ----------------------------------------------------------------------------

    def _backlog(self) -> int:
        return len(self._pending) + len(self._to_sync)

    async def drained(self) -> None:
        """Wait until every event appended so far is in the chain (tests, shutdown)."""
        async with self._drained:
            await self._drained.wait_for(lambda: not self._pending and not self._to_sync)

    async def _drain_loop(self) -> None:
        failures = 0
        while True:
            if not self._pending:
                self._drain_wake.clear()
                await self._drain_wake.wait()
            batch = self._pending[: self.max_batch]
            try:
                await self._chain(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the events stay spooled; retry with backoff
                delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                failures += 1
                self._failures = failures
                await self._notify()  # reads waiting for the drain stop waiting
                logger.warning(
                    "audit spool: chaining failed, retrying",
                    exc_info=True,
                    extra={"pending": len(self._pending), "retry_s": delay},
                )
                await asyncio.sleep(delay)
                continue
            failures = self._failures = 0
            del self._pending[: len(batch)]
            if not self._pending and not self._to_sync:
                await self._maybe_truncate()
            await self._notify()
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(self.drain_interval_s)  # let the next batch gather

    async def _notify(self) -> None:
        """Wake whoever waits for the drain (`drained()`, appends held by backpressure)."""
        async with self._drained:
            self._drained.notify_all()

    async def _chain(self, events: list[dict[str, Any]]) -> None:
        async with self.sessionmaker() as session:
            await record_audits(session, [_event(record) for record in events])
            await session.commit()

    async def _maybe_truncate(self) -> None:
        """Empty the file once everything in it is chained and it has grown past rotate_bytes."""
        async with self._io:
            fd = self._require_fd()
            if self._pending or self._to_sync or os.fstat(fd).st_size < self.rotate_bytes:
                return
            # A crash before this point only means recovery finds events it already has.
            os.ftruncate(fd, 0)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("audit spool is not started")
        return self._fd

    # --- recovery ----------------------------------------------------------------------------

    async def recover(self) -> int:
        """Chain the events of every spool file no live process holds; returns how many."""
        total = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive and chains it itself
                if os.fstat(fd).st_nlink == 0:
                    continue  # another process recovered and removed it meanwhile
                records = list(_read_records(path))
                total += await self._chain_missing(records)
                path.unlink()
                _fsync_dir(self.directory)
            finally:
                os.close(fd)
        return total

    async def _chain_missing(self, records: list[dict[str, Any]]) -> int:
        added = 0
        for start in range(0, len(records), self.max_batch):
            batch = records[start : start + self.max_batch]
            keys = [r["event_key"] for r in batch]
            async with self.sessionmaker() as session:
                present = set(
                    (
                        await session.scalars(
                            select(AuditEvent.event_key).where(AuditEvent.event_key.in_(keys))
                        )
                    ).all()
                )
            missing = [r for r in batch if r["event_key"] not in present]
            if missing:
                await self._chain(missing)
                added += len(missing)
        return added


def _event(record: dict[str, Any]) -> dict[str, Any]:
    event = dict(record)
    event["ts"] = datetime.fromisoformat(record["ts"])
    return event


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


def _read_records(path: Path) -> Iterable[dict[str, Any]]:
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # torn last line: its write never completed, so its read was not answered
            try:
                yield json.loads(raw)
            except ValueError:
                logger.error("audit spool: unreadable line skipped", extra={"path": str(path)})


def _encode_write_and_sync(fd: int, records: list[dict[str, Any]]) -> None:
    _write_and_sync(fd, b"".join(_line(record) for record in records))


def _write_and_sync(fd: int, data: bytes) -> None:
    end = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fdatasync(fd)
    except OSError:
        # No half-written line may stay in front of the next group (its reads get a 503).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, end)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
