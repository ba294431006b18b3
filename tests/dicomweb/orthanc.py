"""A real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) for the tests: loopback port, its
own temporary storage, no DICOM port, no remote access. Started and stopped by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

BINARY = shutil.which("Orthanc")
MODALITY_AET = "MODALITY"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def need_orthanc() -> None:
    if BINARY and PLUGIN.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("Orthanc and its DICOMweb plugin must be installed in CI (.ci/run)")
    pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    root: Path
    port: int = field(default_factory=free_port)
    # DICOMweb peers Orthanc may send to (its STOW-RS client), by name.
    servers: dict[str, Any] = field(default_factory=dict)
    # A DICOM (C-STORE) port, open to one modality on 127.0.0.1 only; 0: no DICOM server.
    dicom_port: int = 0
    lua_scripts: list[Path] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, Any]:
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        return {
            "Name": "MEDSIGHT-TEST-PACS",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "DicomServerEnabled": bool(self.dicom_port),
            "DicomPort": self.dicom_port or 4242,
            "DicomAet": "ORTHANC",
            # Orthanc cannot bind to loopback only: it accepts stores from this one modality,
            # checked by its address, and nothing else.
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowEcho": False,
            "DicomCheckModalityHost": True,
            # (The port is where Orthanc would send to it; never used here.)
            "DicomModalities": {"modality": [MODALITY_AET, "127.0.0.1", 104]},
            "LuaScripts": [str(p) for p in self.lua_scripts],
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpTimeout": 120,
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": False,
                "Servers": self.servers,
            },
        }

    def start(self, timeout: float = 60.0) -> Orthanc:
        need_orthanc()
        assert BINARY is not None
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(self.config()))
        log = open(self.root / "orthanc.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [BINARY, str(path)],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/system", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"Orthanc did not start: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        path = self.root / "orthanc.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    # --- Orthanc's REST API --------------------------------------------------------------
    def store(self, data: bytes) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/instances", content=data, timeout=60)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def c_store(self, path: Path) -> None:
        """Send a DICOM file by C-STORE (dcmtk's storescu), as a modality or a DIMSE PACS."""
        storescu = shutil.which("storescu")
        if storescu is None:
            if os.environ.get("CI"):
                pytest.fail("storescu (dcmtk) must be installed in CI")
            pytest.skip("storescu (dcmtk) is not installed")
        subprocess.run(
            [
                storescu,
                "-aet",
                MODALITY_AET,
                "-aec",
                "ORTHANC",
                "127.0.0.1",
                str(self.dicom_port),
                str(path),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def series_in_study(self, study_instance_uid: str) -> list[dict[str, Any]]:
        r = httpx.post(
            f"{self.url}/tools/find",
            json={
                "Level": "Series",
                "Query": {"StudyInstanceUID": study_instance_uid},
                "Expand": True,
            },
            timeout=30,
        )
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()
        return found

    def instance_file(self, orthanc_id: str) -> bytes:
        r = httpx.get(f"{self.url}/instances/{orthanc_id}/file", timeout=60)
        r.raise_for_status()
        return r.content


def series_by_modality(orthanc: Orthanc, study_uid: str) -> dict[str, dict[str, Any]]:
    return {s["MainDicomTags"].get("Modality", ""): s for s in orthanc.series_in_study(study_uid)}
