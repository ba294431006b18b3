"""Decompression bombs against a real server: each is refused with a 4xx, costs little memory,
stores and queues nothing, and eight at once leave the service answering.

Peak memory is the server process's high-water mark (VmHWM) measured from a reset just before
each attack, after a normal analysis has loaded the models. The server runs with a 1 MB upload
limit so the deflated DICOM can be a bomb *at the limit* without costing this machine gigabytes
on code that inflates before checking (`bench/hostile_uploads.py` measures the 20 MB default).
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL, fixture_images
from tests.e2e.server import Server, running_server
from tests.security.bombs import deflated_dicom_bomb, jpeg_bomb, png_bomb

pytestmark = pytest.mark.slow

UPLOAD_LIMIT_MB = 1
PEAK_BUDGET_MB = 300
# Two decodes run at once (ImageLimits.max_concurrent_decodes), so eight together cost at most
# about two bombs' worth.
CONCURRENT_BUDGET_MB = 2 * PEAK_BUDGET_MB
LIMIT = UPLOAD_LIMIT_MB * 2**20


def _bombs() -> dict[str, Callable[[], bytes]]:
    """Each builder returns a file under the upload limit (asserted in the test)."""
    return {
        # Inflates to ~1 GB: pydicom used to inflate it all before any check.
        "deflated_dicom": lambda: deflated_dicom_bomb(1000 * LIMIT),
        # The 16-bit PNG: 7000 x 7000, 98 MB of samples.
        "png16_7000": lambda: png_bomb(7000, 7000, bit_depth=16),
        # The largest 16-bit PNG the limits let through (48 MB decoded).
        "png16_at_decode_limit": lambda: png_bomb(5016, 5016, bit_depth=16),
        # 50 M RGBA pixels (the pixel limit): 200 MB in Pillow, more once converted.
        "png_rgba_50mpx": lambda: png_bomb(7071, 7071, colour_type=6),
        # 50 M gray pixels at 8 bits.
        "png_gray_50mpx": lambda: png_bomb(7071, 7071),
        # A flat 50 M pixel RGB JPEG: 150 MB decoded at full size.
        "jpeg_rgb_50mpx": lambda: jpeg_bomb(7071, 7071),
    }


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    built = {name: build() for name, build in _bombs().items()}
    for name, data in built.items():
        assert len(data) <= LIMIT, (name, len(data))
    return built


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("bombs")
    extra = {"DATABASE_URL": PG_URL} if PG_URL else {}
    with running_server(data_dir, MAX_UPLOAD_SIZE_MB=str(UPLOAD_LIMIT_MB), **extra) as srv:
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            _analyse(client, fixture_images()[0])  # loads the models before any measurement
        yield srv


def _status(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, key
    return int(match.group(1)) * 1024


def _peak_mb(server: Server, attack: Callable[[], None]) -> float:
    """How far the server's resident memory rose above where it stood before `attack`."""
    assert server.proc is not None
    pid = server.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status(pid, "VmRSS")
    attack()
    time.sleep(0.2)
    return (_status(pid, "VmHWM") - before) / 2**20


def _upload(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post("/api/v1/analyze", files={"image": (name, data)})


def _analyse(client: httpx.Client, image: Path) -> dict:
    response = client.post("/api/v1/analyze", files={"image": (image.name, image.read_bytes())})
    assert response.status_code == 202, response.text
    task = response.json()["task_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/analyze/status/{task}", params={"wait": 10}).json()
        if status["status"] not in {"queued", "running"}:
            return status
    raise AssertionError("the normal analysis did not finish")


def _jobs(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return sum(float(v) for v in re.findall(r"^medsight_queue_jobs\{[^}]*\} (\S+)$", text, re.M))


def _stored(server: Server) -> int:
    return sum(1 for p in server.data_dir.rglob("uploads/**/*") if p.is_file())


def _assert_refused(response: httpx.Response, name: str) -> None:
    assert response.status_code in {413, 415, 422}, (name, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), name
    body = response.json()
    assert body["status"] == response.status_code and body["detail"], name
    assert "Traceback" not in response.text, name


@pytest.mark.parametrize("name", list(_bombs()))
def test_bomb_is_refused_cheaply_and_leaves_nothing(
    server: Server, bombs: dict[str, bytes], name: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        jobs, stored = _jobs(client), _stored(server)
        responses: list[httpx.Response] = []
        peak = _peak_mb(server, lambda: responses.append(_upload(client, name, bombs[name])))
        _assert_refused(responses[0], name)
        assert peak < PEAK_BUDGET_MB, f"{name} raised peak RSS by {peak:.0f} MB"
        assert _jobs(client) == jobs and _stored(server) == stored


def test_eight_concurrent_bombs_leave_the_service_answering(
    server: Server, bombs: dict[str, bytes]
) -> None:
    names = [*bombs, *bombs][:8]
    with httpx.Client(base_url=server.url, timeout=180) as client:
        jobs, stored = _jobs(client), _stored(server)
        responses: list[httpx.Response] = []

        def attack() -> None:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                responses.extend(pool.map(lambda n: _upload(client, n, bombs[n]), names))

        peak = _peak_mb(server, attack)
        for name, response in zip(names, responses, strict=True):
            _assert_refused(response, name)
        assert peak < CONCURRENT_BUDGET_MB, f"8 bombs at once raised peak RSS by {peak:.0f} MB"
        assert _jobs(client) == jobs and _stored(server) == stored
        assert server.proc is not None and server.proc.poll() is None
        assert client.get("/api/v1/health").status_code == 200
        assert _analyse(client, fixture_images()[1])["status"] == "complete"
