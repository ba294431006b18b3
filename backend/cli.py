"""The `medsight` command: serve, db, analyze, train, eval, calibrate, corpus, worker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from backend.contract import AnalysisResult

app = typer.Typer(
    help="MedSight chest X-ray triage backend (decision support, not diagnosis).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models.", no_args_is_help=True)
calibrate_app = typer.Typer(help="Per-site calibration.", no_args_is_help=True)
corpus_app = typer.Typer(help="The RAG corpus.", no_args_is_help=True)
models_app = typer.Typer(help="The models and their derived files.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(calibrate_app, name="calibrate")
app.add_typer(corpus_app, name="corpus")
app.add_typer(models_app, name="models")


def _echo_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


# --- service -----------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings PORT)")] = None,
    reload: Annotated[bool, typer.Option(help="Auto-reload on code changes (development)")] = False,
) -> None:
    """Run the API server with uvicorn."""
    import uvicorn

    from backend.config import get_settings

    settings = get_settings()
    uvicorn.run(
        "backend.main:app",
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        **server_options(settings),
    )


def server_options(settings: Any) -> dict[str, Any]:
    """uvicorn's options for the service (bench/capacity.py serves its baseline with the same)."""
    return {
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None,
        "log_config": None,
        # The app logs every request itself (backend/api/middleware.py); uvicorn's own access
        # log would log each one a second time.
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from backend.config import get_settings
    from backend.db.migrate import upgrade_database

    upgrade_database(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "base",
) -> None:
    """Revert migrations down to REVISION (default: base)."""
    from backend.config import get_settings
    from backend.db.migrate import downgrade_database

    downgrade_database(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("check")
def db_check() -> None:
    """Fail if the ORM models and the migrations disagree."""
    from backend.config import get_settings
    from backend.db.migrate import check_database

    check_database(get_settings().database_url)
    typer.echo("models and migrations agree")


# --- one analysis in-process ---------------------------------------------------------------
@app.command()
def analyze(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="PNG, JPEG or DICOM")],
    symptoms: Annotated[str | None, typer.Option(help="Free-text symptoms")] = None,
    heatmap: Annotated[
        Path | None, typer.Option(help="Write the heatmap panels here (.png, else JPEG)")
    ] = None,
    patient_ref: Annotated[str | None, typer.Option(help="Patient reference")] = None,
) -> None:
    """Run the full pipeline on one image in this process and print the result JSON."""
    result, jpeg = asyncio.run(_analyze_once(image.read_bytes(), symptoms, patient_ref))
    if heatmap is not None and jpeg is not None:
        from backend.ml.vision import to_png

        heatmap.write_bytes(to_png(jpeg) if heatmap.suffix.lower() == ".png" else jpeg)
    data = result.model_dump(mode="json")
    if data["vision"]:
        where = f"; written to {heatmap}" if heatmap else ""
        data["vision"]["heatmap_base64"] = f"<{len(jpeg or b'')} bytes JPEG{where}>"
    _echo_json(data)
    if result.overall_status == "FAILED":
        raise typer.Exit(1)


async def _analyze_once(
    data: bytes, symptoms: str | None, patient_ref: str | None
) -> tuple[AnalysisResult, bytes | None]:
    from backend.analysis.batching import MicroBatcher
    from backend.analysis.context import PipelineInput
    from backend.analysis.pipeline import Pipeline
    from backend.analysis.runtime import code_version
    from backend.analysis.service import image_limits
    from backend.analysis.stages import StageDeps, default_stages
    from backend.analysis.threads import InferenceThreads
    from backend.config import get_settings
    from backend.db.base import new_id
    from backend.imaging import ImageRejected, decode_image
    from backend.ml.catalog import register_default_models
    from backend.ml.registry import ModelRegistry

    settings = get_settings()
    limits = image_limits(settings)
    try:
        decode_image(data, limits)
    except ImageRejected as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    threads = InferenceThreads(settings.inference_threads)
    registry = ModelRegistry(gpu_budget_mb=settings.gpu_vram_budget_mb)
    register_default_models(registry, settings)
    batcher = MicroBatcher(max_batch=1, max_wait_ms=0, threads=threads)
    deps = StageDeps(registry=registry, batcher=batcher, threads=threads, limits=limits)
    pipeline = Pipeline(default_stages(deps), code_version=code_version())
    ctx = await pipeline.run(
        PipelineInput(
            analysis_id=new_id(),
            image_bytes=data,
            image_sha256=hashlib.sha256(data).hexdigest(),
            symptoms=symptoms,
            patient_ref=patient_ref,
        )
    )
    return pipeline.build_result(ctx), ctx.heatmap_jpeg


# --- training, evaluation, calibration -------------------------------------------------------
@train_app.command("vision")
def train_vision(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="cxr-dev layout")],
    out: Annotated[Path, typer.Option(help="Output folder, e.g. models/vision/<version>/")],
    backbone: str = "efficientnet_lite0",
    seed: int = 0,
    device: str = "auto",
) -> None:
    """Train the vision anomaly detector on the normal training images."""
    from training.vision import train_vision as run

    _echo_json(run(data, out, backbone=backbone, seed=seed, device=device))


@eval_app.command("vision")
def eval_vision(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="cxr-dev layout")],
    out: Annotated[Path, typer.Option(help="report.json path")],
    split: str = "test",
    model_dir: Annotated[Path | None, typer.Option(help="Checkpoint folder")] = None,
    plots: Annotated[Path | None, typer.Option(help="Folder for ROC/PR/histogram plots")] = None,
    calibration: Annotated[Path | None, typer.Option(help="Site calibration file")] = None,
    fusion: str = "default",
) -> None:
    """AUROC (overall, per finding), ablation, threshold metrics and ECE on a split."""
    from training.vision import evaluate_vision as run

    report = run(
        data,
        split,
        out,
        model_dir=model_dir,
        plots_dir=plots,
        calibration=calibration,
        fusion=fusion,
    )
    _echo_json({k: v for k, v in report.items() if k != "per_image"})


@calibrate_app.command("vision")
def calibrate_vision(
    normals: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Folder of normals")],
    out: Annotated[Path, typer.Option(help="Calibration file to write")],
    model_dir: Annotated[Path | None, typer.Option(help="Checkpoint folder")] = None,
) -> None:
    """Re-fit what defines "normal" from a site's own normal images (>= 50), no labels."""
    from training.vision import calibrate_vision as run

    _echo_json(run(normals, out, model_dir=model_dir))


@train_app.command("ner")
def train_ner(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="shared/data/ner")],
    out: Annotated[Path, typer.Option(help="Output folder, e.g. models/nlp/<version>/")],
    seed: int = 0,
) -> None:
    """Train the biomedical entity recogniser."""
    from training.ner import train_ner as run

    _echo_json(run(data, out, seed=seed))


@eval_app.command("ner")
def eval_ner(
    data: Annotated[Path, typer.Option(exists=True, file_okay=False, help="A corpus folder")],
    out: Annotated[Path, typer.Option(help="report.json path")],
    split: str = "test",
    model_dir: Annotated[Path | None, typer.Option(help="Model folder")] = None,
) -> None:
    """Per-type precision/recall/F1 and micro F1 on a corpus split."""
    from training.ner import evaluate_ner as run

    _echo_json(run(data, split, out, model_dir=model_dir))


@eval_app.command("classify")
def eval_classify(
    csv: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="label,text CSV")],
    out: Annotated[Path, typer.Option(help="report.json path")],
    model_dir: Annotated[Path | None, typer.Option(help="Model folder")] = None,
) -> None:
    """Zero-shot condition ranking: accuracy, macro-F1 and per-class scores."""
    from training.ner import evaluate_classify as run

    _echo_json(run(csv, out, model_dir=model_dir))


@eval_app.command("retrieval")
def eval_retrieval(
    questions: Annotated[Path, typer.Option(exists=True, dir_okay=False)],
    abstracts: Annotated[Path, typer.Option(exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option(help="report.json path")],
) -> None:
    """Recall@1/5/10 and MRR for dense, BM25 and hybrid retrieval in one run."""
    from backend.config import get_settings
    from backend.ml.embeddings import load_minilm
    from training.rag import evaluate_retrieval as run

    embedder = load_minilm(model_path=get_settings().embedding_model)
    _echo_json(run(questions, abstracts, out, embedder=embedder))


@corpus_app.command("build")
def corpus_build(
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            exists=True,
            help="A folder or one JSON Lines file (.jsonl or .jsonl.gz) of documents to add; "
            "default: the corpus the package ships (CORPUS_DATA_DIR)",
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Fill the embedded ChromaDB collection (idempotent: a rerun adds nothing).

    The default corpus (CORPUS_DATA_DIR) is always indexed first, so `--from` adds to it rather
    than standing in for it (the server builds no default index once one exists). A site's own
    documents are one JSON object a line: `title`, `text`, optional `id`, `url`, `source`
    (PubMed abstract and MedQuAD records are recognised too).
    """
    from tqdm import tqdm

    from backend.config import get_settings
    from backend.ml.embeddings import load_minilm
    from backend.ml.rag import build_corpus

    settings = get_settings()
    assert settings.chroma_dir is not None  # noqa: S101
    embedder = load_minilm(model_path=settings.embedding_model)
    bar = tqdm(unit="chunk", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    sources = [data or settings.corpus_data_dir] + ([source] if source is not None else [])
    for folder_or_file in sources:
        stats = build_corpus(
            folder_or_file,
            settings.chroma_dir,
            embedder,
            progress=progress,
            chroma_url=settings.chroma_url,
        )
        _echo_json({"source": str(folder_or_file), **stats})
    bar.close()


@app.command()
def sample() -> None:
    """Print the path of the sample chest X-ray that ships with MedSight (CC BY 4.0)."""
    from importlib import resources

    typer.echo(str(resources.files("backend.imaging").joinpath("samples", "chest-xray.png")))


@models_app.command("prepare")
def models_prepare(
    corpus: Annotated[bool, typer.Option(help="Also index the default corpus")] = False,
) -> None:
    """Load every required model once: derived ONNX graphs are written to MODEL_CACHE_DIR.

    Run at image build time so the first start of a container is fast and needs no writes
    beside the weights.
    """
    from backend.config import get_settings
    from backend.ml.catalog import register_default_models
    from backend.ml.registry import ModelRegistry

    settings = get_settings()
    registry = ModelRegistry(gpu_budget_mb=settings.gpu_vram_budget_mb)
    register_default_models(registry, settings)
    required = [n for n, m in registry.state()["models"].items() if m["required"]]
    asyncio.run(registry.preload(required))
    state = registry.state()
    _echo_json({"model_cache_dir": settings.model_cache_dir, **state})
    if not registry.ready():
        raise typer.Exit(1)
    if corpus:
        corpus_build(None)


audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(help="A `head` printed by an earlier verify and kept outside the database"),
    ] = None,
) -> None:
    """Check the keyed audit chain; exits 1 if a row was edited or removed (see `proves`)."""
    from backend.audit.service import verify_audit_chain
    from backend.config import get_settings

    settings = get_settings()
    report = verify_audit_chain(settings.database_url, key=settings.audit_hmac_key, anchor=anchor)
    _echo_json(report)
    if not report.get("ok"):
        raise typer.Exit(1)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs at a time in this process")] = 1,
    pool: Annotated[str, typer.Option(help="solo | threads | prefork")] = "solo",
    hostname: Annotated[str | None, typer.Option(help="Celery node name")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve /metrics on this port")] = None,
) -> None:
    """Run a Celery worker (QUEUE_BACKEND=celery, REDIS_URL) that loads its models once."""
    from backend.analysis.worker import run_worker

    raise typer.Exit(
        run_worker(concurrency=concurrency, pool=pool, hostname=hostname, metrics_port=metrics_port)
    )


@app.command()
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write here instead of printing")] = None,
) -> None:
    """Print (or write) the API's OpenAPI document, as committed in `openapi.json`."""
    from backend.api.app import create_app
    from backend.api.openapi import render

    text = render(create_app().openapi())
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
