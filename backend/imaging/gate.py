"""A process-wide bound on full-resolution decodes running at once.

Each decode may hold up to `ImageLimits.max_decoded_bytes` at full resolution; this bound keeps
the sum small when many uploads arrive together (the upload path allows 8 threads).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_gates: dict[int, threading.BoundedSemaphore] = {}


@contextmanager
def decode_slot(slots: int) -> Iterator[None]:
    """Hold one of `slots` decode slots (shared by every caller asking for that many)."""
    with _lock:
        gate = _gates.get(slots)
        if gate is None:
            gate = _gates[slots] = threading.BoundedSemaphore(max(1, slots))
    with gate:
        yield
