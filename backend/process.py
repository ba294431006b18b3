"""Process-wide interpreter settings for the service and its workers."""

from __future__ import annotations

import sys

from backend.config import Settings


def configure_process(settings: Settings) -> None:
    """Apply settings that belong to the whole process (call once at start-up).

    The GIL switch interval: inference runs in threads that release the GIL inside ONNX
    Runtime but need it for a few Python lines between calls (the NLP stage embeds ten clauses
    one call each while another thread extracts entities). With CPython's default 5 ms
    interval each hand-over can wait up to 5 ms behind pure-Python work on another thread;
    0.5 ms cut the NLP stage from 35 to 26 ms here and bounds how long a compute thread can
    keep the event loop waiting.
    """
    sys.setswitchinterval(max(settings.gil_switch_interval_ms, 0.05) / 1000.0)
