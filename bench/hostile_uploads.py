"""Peak memory of hostile uploads against a real server (for docs/security-hostile-input.md).

    python -m bench.hostile_uploads [--upload-limit-mb 20]

Starts the service (SQLite, temp data dir), runs one normal analysis so the models are loaded,
then sends each bomb once and prints how far the server's VmHWM rose above its RSS just before,
the status code and the time; finally eight bombs at once.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import fixture_images
from tests.e2e.server import running_server
from tests.security import test_decompression_bombs as t
from tests.security.bombs import deflated_dicom_bomb


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upload-limit-mb", type=int, default=20)
    args = parser.parse_args()
    limit = args.upload_limit_mb * 2**20
    bombs = {name: build() for name, build in t._bombs().items()}
    # At the real limit the deflated bomb inflates to ~1000x the limit.
    bombs["deflated_dicom"] = deflated_dicom_bomb(1000 * (limit - 64 * 1024))
    out = sys.stdout
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp), MAX_UPLOAD_SIZE_MB=str(args.upload_limit_mb)) as server,
        httpx.Client(base_url=server.url, timeout=300) as client,
    ):
        t._analyse(client, fixture_images()[0])
        out.write(f"upload limit {args.upload_limit_mb} MB\n")
        out.write("| upload | file size | status | peak RSS rise (MB) | seconds |\n")
        out.write("|---|---|---|---|---|\n")
        for name, data in bombs.items():
            if len(data) > limit:
                raise SystemExit(f"{name} is over the upload limit")
            codes: list[int] = []
            start = time.perf_counter()
            peak = t._peak_mb(
                server,
                lambda d=data, n=name, c=codes: c.append(t._upload(client, n, d).status_code),
            )
            out.write(
                f"| {name} | {len(data) / 1024:.0f} KB | {codes[0]} | {peak:.0f} | "
                f"{time.perf_counter() - start:.2f} |\n"
            )
        names = [*bombs, *bombs][:8]
        codes = []

        def attack() -> None:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                codes.extend(pool.map(lambda n: t._upload(client, n, bombs[n]).status_code, names))

        peak = t._peak_mb(server, attack)
        health = client.get("/api/v1/health").status_code
        after = t._analyse(client, fixture_images()[1])["status"]
        out.write(f"8 at once: statuses {sorted(codes)}, peak RSS rise {peak:.0f} MB; ")
        out.write(f"health {health}; a normal analysis afterwards: {after}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
