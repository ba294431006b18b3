"""The wheel, installed read-only and run from an empty directory, does the whole job."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.packaging.conftest import Installed, Served

pytestmark = pytest.mark.slow

SYMPTOMS = "Dry cough and fever for three days, short of breath on exertion."


def test_the_wheel_carries_models_data_corpus_sample_and_migrations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for expected in (
        "backend/_models/vision/v1/weights.safetensors",
        "backend/_models/vision/v1/metadata.json",
        "backend/_models/nlp/minilm-ner-1.1/ner.safetensors",
        "backend/_models/nlp/minilm-ner-1.1/tokenizer/tokenizer.json",
        "backend/ml/nlp/data/symptoms.json",
        "backend/ml/rag/corpus_data/abstracts.jsonl.gz",
        "backend/ml/rag/corpus_data/medquad_lung.jsonl.gz",
        "backend/ml/rag/corpus_data/README.md",
        "backend/imaging/samples/chest-xray.png",
        "backend/db/migrations/env.py",
        "backend/viewer/static/index.html",
    ):
        assert expected in names, expected
    assert not any("minilm-ner-1.0" in n for n in names)  # the unused checkpoint is gone
    assert not any(n.endswith(".onnx") for n in names)  # derived graphs are never shipped


def test_installed_wheel_serves_analysis_chat_and_pdf(served: Served) -> None:
    site = served.installed.site
    image = site / "backend" / "imaging" / "samples" / "chest-xray.png"
    with httpx.Client(base_url=served.url, timeout=60) as client:
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 200, ready.text

        accepted = client.post(
            "/api/v1/analyze",
            files={"image": (image.name, image.read_bytes(), "image/png")},
            data={"symptoms": SYMPTOMS},
        )
        assert accepted.status_code == 202, accepted.text
        task = accepted.json()
        deadline = time.monotonic() + 120
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            status = client.get(
                f"/api/v1/analyze/status/{task['task_id']}", params={"wait": 30}
            ).json()
            if status["status"] not in {"queued", "running"}:
                break
        result = client.get(f"/api/v1/analyze/result/{task['session_id']}").json()
        assert result["overall_status"] == "COMPLETE", json.dumps(result)[:2000]
        assert result["vision"]["anomaly_score"] is not None
        assert result["nlp"] is not None

        with client.stream(
            "POST",
            "/api/v1/chat",
            json={"message": "What causes pneumonia?", "session_id": task["session_id"]},
        ) as response:
            assert response.status_code == 200
            events = _sse(response)
        sources = [d for name, d in events if name == "sources"]
        assert sources and len(sources[0]["sources"]) >= 1, events[:3]
        assert any(name == "done" for name, _ in events)

        pdf = client.get(f"/api/v1/report/{task['session_id']}")
        assert pdf.status_code == 200
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")

    # Derived files went to the data folder under HOME, none beside the read-only weights.
    cache = served.installed.home / ".local" / "share" / "medsight" / "model-cache"
    # (+ digests): three graphs and the condition profiles' phrase vectors.
    derived = sorted(p.suffix for p in cache.iterdir() if p.suffix != ".sha256")
    assert derived == [".npy", ".onnx", ".onnx", ".onnx"]
    assert all(p.with_name(p.name + ".sha256").is_file() for p in cache.glob("*.np[y]"))
    assert not list(site.rglob("*.onnx")) and not list(site.rglob("condition-phrases-*"))


def _sse(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    events: list[tuple[str, dict[str, object]]] = []
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


def test_no_checkout_path_leaks_into_the_install(installed: Installed) -> None:
    """The installed package resolves everything inside itself (models) or under HOME (data)."""
    import subprocess
    import sys

    code = (
        "import json; from backend.config import get_settings as g; s = g(); "
        "print(json.dumps({k: str(getattr(s, k)) for k in "
        "('models_dir', 'data_dir', 'model_cache_dir', 'corpus_data_dir', 'vision_model_dir')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=installed.workdir,
        env=installed.env(HOME=str(installed.root / "probe-home")),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    paths = {k: Path(v) for k, v in json.loads(out).items()}
    for key in ("models_dir", "corpus_data_dir", "vision_model_dir"):
        assert paths[key].is_relative_to(installed.site), (key, paths[key])
    for key in ("data_dir", "model_cache_dir"):
        assert paths[key].is_relative_to(installed.root / "probe-home"), (key, paths[key])
