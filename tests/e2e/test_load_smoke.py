"""A short run of bench/load.py against a real server: mixed traffic, no errors, bounded."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.load import run
from tests.conftest import PG_URL, fixture_images
from tests.e2e.server import Server, free_port, make_env

pytestmark = pytest.mark.slow


async def test_load_smoke_has_no_errors(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        PG_URL,
        RATE_LIMIT_ANALYZE="100000/hour",
        LOG_LEVEL="WARNING",
        CHAT_LOCAL_TIER="false",  # the API under load; bench.local_llm measures the model
    )
    port = free_port()
    server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=tmp_path, env=env)
    server.start(wait_ready=False)
    try:
        args = argparse.Namespace(
            mix="health=3,result=5,status=2,chat=1,analyze=1",
            connections=20,
            duration=5.0,
            rate=40.0,
            max_analyze=4,
            seed=1,
            seed_timeout=120.0,
            request_timeout=20.0,
            no_symptoms=True,
            warmup=0.0,  # keeps the text models out of a 5 s smoke run
        )
        report = await run(args, server.url, fixture_images()[0].read_bytes())
    finally:
        server.stop()
    endpoints = report["endpoints"]
    assert report["total"]["errors"] == 0, endpoints
    assert {"health", "result"} <= set(endpoints)
    assert endpoints["result"]["count"] > 10
    assert report["duration_s"] < 5 + 20 + 6  # self-stopping: the run, one timeout, slack
