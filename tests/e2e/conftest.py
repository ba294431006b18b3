"""End-to-end fixtures: a real uvicorn process with real models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.e2e.server import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("e2e")
    extra = {"DATABASE_URL": PG_URL} if PG_URL else {}
    with running_server(data_dir, **extra) as srv:
        yield srv


def db_for(data_dir: Path) -> dict[str, str]:
    return {"DATABASE_URL": PG_URL} if PG_URL else {}
