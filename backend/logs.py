"""Structured JSON logging with the current request id attached to every line.

Records are handed to a queue and formatted and written by a listener thread, so a request
never waits for stderr (a slow pipe or a full disk) and the event loop never spends its time
encoding log lines.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.handlers
import os
import queue
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = _record_request_id(record)
        if rid:
            payload["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def _record_request_id(record: logging.LogRecord) -> str | None:
    """The request id captured when the record was queued, else the current one."""
    if hasattr(record, "_request_id"):
        return record._request_id  # type: ignore[no-any-return]
    return request_id_var.get()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _record_request_id(record)
        return True


class _QueueHandler(logging.handlers.QueueHandler):
    """Queue the record as it is, with what the listener cannot know: the request id.

    The stock `prepare` formats the record in the caller's thread (the work this handler exists
    to move off the event loop) and drops `exc_info`, which the JSON formatter renders itself.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record._request_id = request_id_var.get()
        record.msg = record.getMessage()  # the arguments may change once the caller goes on
        record.args = None
        return record


_listener: logging.handlers.QueueListener | None = None
_handler: _QueueHandler | None = None


def _stop_listener() -> None:
    """Write what is queued and stop the listener thread (at reconfiguration and at exit)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def _listen_in_child() -> None:
    """A forked child (a Celery prefork worker) has no listener thread: start its own."""
    global _listener
    if _listener is None or _handler is None:
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _handler.queue = records
    _listener = logging.handlers.QueueListener(
        records, *_listener.handlers, respect_handler_level=True
    )
    _listener.start()


atexit.register(_stop_listener)
os.register_at_fork(after_in_child=_listen_in_child)


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    """Install one queued stderr handler on the root logger (idempotent)."""
    global _listener, _handler
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_medsight", False):
            root.removeHandler(handler)
    _stop_listener()
    stream = logging.StreamHandler(sys.stderr)
    if json_logs:
        stream.setFormatter(JsonFormatter())
    else:
        stream.addFilter(_RequestIdFilter())
        stream.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _QueueHandler(records)
    handler._medsight = True  # type: ignore[attr-defined]
    _handler = handler
    _listener = logging.handlers.QueueListener(records, stream, respect_handler_level=True)
    _listener.start()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "chromadb", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
