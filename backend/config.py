"""MedSight settings: one pydantic-settings class read from the environment and `.env`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
# In an installed wheel the model folder ships inside the package (setup.py maps models/ there).
_BUNDLED_MODELS = PACKAGE_DIR / "_models"


def in_checkout() -> bool:
    """True when running from a source tree (not from an installed wheel)."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "backend").is_dir()


def default_models_dir() -> Path:
    """The wheel's bundled models, else the checkout's `models/` folder."""
    if _BUNDLED_MODELS.is_dir():
        return _BUNDLED_MODELS
    return REPO_ROOT / "models"


def default_data_dir() -> Path:
    """`data/` in a checkout; `$XDG_DATA_HOME/medsight` (~/.local/share/medsight) when installed."""
    if in_checkout():
        return REPO_ROOT / "data"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "medsight"


def on_hf_spaces() -> bool:
    """True inside a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


# The Spaces proxy reaches the container from the platform's private network.
_SPACES_PROXIES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
_SPACES_FRAME_ANCESTORS = "https://huggingface.co https://*.hf.space"
_R2_ENDPOINT = "https://{account}.r2.cloudflarestorage.com"


def default_corpus_dir() -> Path:
    """The default RAG corpus shipped in the package (PubMed abstracts + MedQuAD, compressed)."""
    return PACKAGE_DIR / "ml" / "rag" / "corpus_data"


# Values that people copy from examples and forget to change.
_PLACEHOLDER_MARKERS = ("change", "changeme", "secret", "placeholder", "example", "your-", "xxx")
_MIN_SECRET_LEN = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to change."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the service; each one is documented in `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `NLP_MODEL_DIR=` as in .env.example means "the default"
    )

    # --- service -------------------------------------------------------------------------
    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = Field(default=8000, validation_alias="PORT")
    log_level: str = "INFO"
    log_json: bool = True
    # Access log: every request up to this many per second, then one in
    # ACCESS_LOG_SAMPLE_EVERY successful ones (4xx/5xx and slow requests are always logged).
    access_log_full_per_s: int = Field(default=50, ge=0)
    access_log_sample_every: int = Field(default=100, ge=1)
    access_log_slow_ms: float = Field(default=1000.0, ge=0)
    data_dir: Path = Field(default_factory=default_data_dir)
    secrets_file: Path | None = None

    # --- secrets -------------------------------------------------------------------------
    secret_key: str = ""
    jwt_secret_key: str = ""
    # Keys the audit chain (HMAC-SHA256). Keep it outside the database: whoever holds both can
    # rewrite the audit log undetectably.
    audit_hmac_key: str = ""

    # --- persistence ---------------------------------------------------------------------
    database_url: str = ""
    database_echo: bool = False
    # local | s3 | r2 (r2: S3 with Cloudflare R2's endpoint, from R2_ACCOUNT_ID or S3_ENDPOINT_URL).
    storage_backend: str = "local"
    storage_dir: Path | None = None
    r2_account_id: str | None = None
    s3_bucket: str = "medsight"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    # --- HTTP surface --------------------------------------------------------------------
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_origin_regex: str | None = None
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    # Default empty; on Hugging Face Spaces the platform's private ranges (its proxy).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The web front end's URL, if it is served elsewhere: its origin is allowed for CORS and as
    # the Google sign-in return target, and it is where sign-in returns by default.
    frontend_url: str | None = None
    # Who may embed the pages in a frame (CSP frame-ancestors): 'none' by default; on Hugging
    # Face Spaces, huggingface.co (the Space page shows the app in an iframe).
    frame_ancestors: str | None = None
    # /docs, /redoc and /openapi.json: on by default except in production.
    docs_enabled: bool | None = None
    max_upload_size_mb: float = 20.0
    max_request_body_mb: float = 25.0
    max_image_pixels: int = 50_000_000
    # Full-resolution bytes a decoder may allocate for one image (rows x columns x samples x
    # bytes per sample, read from the header before decoding); bounds a decode's peak memory.
    max_decoded_image_mb: float = 48.0
    # Full-resolution decodes running at once in this process (each holds up to the above).
    max_concurrent_decodes: int = 2
    min_image_side: int = 64
    max_symptoms_chars: int = 5000

    # --- auth and limits -----------------------------------------------------------------
    # Production always requires sign-in; elsewhere anonymous use works unless this is true.
    auth_required: bool = False
    jwt_issuer: str = "medsight"
    jwt_audience: str = "medsight-api"
    access_token_ttl_minutes: int = 15
    refresh_token_ttl_days: int = 14
    # A sign-in's refresh family ends this long after the sign-in, however often refreshed.
    refresh_family_max_days: float = Field(default=30.0, gt=0)
    # Deleting the account needs a sign-in (password or Google) at most this old.
    reauth_max_age_minutes: float = Field(default=10.0, gt=0)
    google_client_id: str | None = None
    google_client_secret: str | None = None
    google_discovery_url: str | None = None
    # The address people open the service at, e.g. https://medsight.hospital.org: links in
    # account mail (email verification) are built on it. Empty: the request's own URL, which
    # an attacker controls through the Host header unless TRUSTED_HOSTS is set.
    public_base_url: str | None = None
    rate_limit_analyze: str = "10/hour"
    rate_limit_chat: str = "50/hour"
    rate_limit_login: str = "20/minute"
    # Speech-to-text is the most CPU-heavy route (Whisper on up to 120 s of audio).
    rate_limit_transcribe: str = "30/hour"
    redis_url: str | None = None

    # --- jobs ----------------------------------------------------------------------------
    queue_backend: str = "local"
    worker_concurrency: int = 2
    job_max_attempts: int = 3
    celery_queue: str = "medsight"
    celery_visibility_timeout_s: float = 300.0
    job_heartbeat_s: float = 10.0
    job_stale_after_s: float = 60.0
    job_resend_after_s: float = 30.0
    job_sweep_interval_s: float = 15.0
    job_timeout_s: float = 600.0
    metrics_token: str | None = None
    retention_days: int = 30

    # --- PACS (DICOMweb in and out; docs/pacs.md) ----------------------------------------
    # STOW-RS receive: the largest request (a study may hold several images; each instance is
    # still held to MAX_UPLOAD_SIZE_MB), instances per request, and requests per caller.
    dicomweb_max_request_mb: float = Field(default=200.0, gt=0)
    dicomweb_max_instances: int = Field(default=50, ge=1)
    rate_limit_dicomweb: str = "600/hour"
    # Where results go back: the PACS's DICOMweb root (STOW-RS to {url}/studies). Empty: results
    # are not sent anywhere.
    pacs_dicomweb_url: str | None = None
    # HTTP basic credentials, or a bearer token, for the PACS (empty: none).
    pacs_dicomweb_username: str | None = None
    pacs_dicomweb_password: str | None = None
    pacs_dicomweb_token: str | None = None
    # A CA bundle for a PACS behind an internal certificate authority.
    pacs_ca_bundle: Path | None = None
    # One STOW-RS request may take this long; deliveries run this many at a time per process.
    pacs_timeout_s: float = Field(default=60.0, gt=0)
    pacs_concurrency: int = Field(default=2, ge=1)
    # Retries while the PACS is unreachable: base * 2^(attempt-1) seconds, capped, with jitter;
    # a delivery still failing this many hours after the analysis finished is given up.
    pacs_retry_base_s: float = Field(default=10.0, gt=0)
    pacs_retry_max_s: float = Field(default=600.0, gt=0)
    pacs_give_up_after_h: float = Field(default=72.0, gt=0)
    # How often the outbox is swept for results finished by other processes (Celery workers).
    pacs_sweep_interval_s: float = Field(default=5.0, gt=0)

    # --- models --------------------------------------------------------------------------
    # The one place models are found: vision/v1 and nlp/minilm-ner-1.1 under it. Default: the
    # wheel's bundled copy, or models/ in a checkout. VISION_MODEL_DIR / NLP_MODEL_DIR override one.
    models_dir: Path = Field(default_factory=default_models_dir)
    vision_anomaly_backend: str = "auto"
    vision_model_dir: Path | None = None
    # The torchvision VGG16 ImageNet state dict (vgg16-397923af.pth) for a VGG16 checkpoint
    # (VISION_ANOMALY_BACKEND=pulmonary); not shipped.
    vision_vgg16_weights: Path | None = None
    vision_calibration: Path | None = None
    vision_fusion: str = "default"
    # ONNX Runtime intra-op threads of one vision call (0: one per core). One is the service's
    # default: concurrent jobs already fill the cores, and a second thread cost ≈ 5 ms more CPU
    # per image for ≈ 6 ms less latency (bench machine, 2 cores).
    vision_threads: int = Field(default=1, ge=0)
    # Micro-batching of concurrent vision calls (1: off). Measured equal or slower on CPU, so off
    # by default; a GPU may gain from batches of 4-8.
    vision_batch_max: int = Field(default=1, ge=1)
    vision_batch_wait_ms: float = 5.0
    nlp_model_dir: Path | None = None
    # How the NER tagger and the ranking embedder run: "auto" = int8 ONNX Runtime on CPU.
    nlp_runtime: str = "auto"
    # Where derived ONNX graphs are cached: writable, never beside the weights (which may be
    # read-only). Default DATA_DIR/model-cache.
    model_cache_dir: Path | None = None
    gpu_vram_budget_mb: int = 4096
    inference_threads: int = 2
    # How much lower the analysis pipeline's threads run than request handling (a nice
    # increment, 0-19; see analysis/threads.py). 0 runs them at the same priority.
    inference_nice: int = Field(default=10, ge=0, le=19)
    # CPython GIL switch interval (default 5 ms) for the service and workers; see process.py.
    gil_switch_interval_ms: float = 0.5
    # A cached finished result is served without a database read for this long after it was
    # last confirmed; another replica's deletion is seen within it (analysis/result_cache.py).
    result_cache_revalidate_s: float = Field(default=10.0, ge=0)
    # Read audit events are fsynced here before the read is answered, then chained in the
    # database (auth/audit_spool.py). Must be on a persistent local disk; default DATA_DIR/
    # audit-spool.
    audit_spool_dir: Path | None = None
    # A verified access token or API key is trusted this long without a database check; a
    # revocation on another replica takes effect here within it (auth/auth_cache.py). 0: check
    # on every request.
    auth_cache_ttl_s: float = Field(default=5.0, ge=0)
    # Threads of the BLAS library under numpy (OpenBLAS) in the service and workers; see
    # process.py. 0 leaves the library's default (one per core).
    blas_threads: int = Field(default=1, ge=0)
    preload_models: bool = True
    embedding_model: str | None = None
    whisper_model: str | None = None
    # Clinical vocabulary for dictation (backend/ml/speech/vocabulary.py; measured in
    # docs/language-and-voice.md): the decoding prompt and the lexicon correction.
    dictation_prompt: bool = True
    dictation_correction: bool = False
    local_llm_path: str | None = None
    # Tier 2 of the chat (a local model; SmolLM2 from the default install). Off: Gemini, then
    # templates only (e.g. for a load test of the API rather than of the model).
    chat_local_tier: bool = True
    local_llm_threads: int = Field(default=1, ge=1, le=64)

    # --- drift monitoring (docs/monitoring.md) ------------------------------------------
    # The last DRIFT_WINDOW scored analyses (per reference: the shipped one or a site
    # calibration) are compared with the reference population; below DRIFT_MIN_N the status
    # stays ok and no statistic is given. Checked (and a change logged) every
    # DRIFT_CHECK_INTERVAL_S seconds.
    drift_window: int = Field(default=200, ge=10, le=5000)
    drift_min_n: int = Field(default=30, ge=5)
    drift_check_interval_s: float = Field(default=300.0, gt=0)
    # Add a warning to a result whose image lies outside the reference population.
    population_warning: bool = True

    # --- chat / RAG ----------------------------------------------------------------------
    gemini_api_key: str | None = None
    gemini_base_url: str | None = None
    gemini_model: str = "gemini-2.0-flash"
    gemini_timeout_s: float = 8.0
    chroma_dir: Path | None = None
    chroma_url: str | None = None
    # The documents indexed on first start: the packaged default corpus unless set; add a site's
    # own with `medsight corpus build --from FILE`.
    corpus_data_dir: Path = Field(default_factory=default_corpus_dir)
    corpus_autobuild: bool = True

    @field_validator("allowed_origins", "trusted_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _csv_lists(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("pacs_dicomweb_url")
    @classmethod
    def _pacs_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("PACS_DICOMWEB_URL must be an http:// or https:// URL")
        return value

    @field_validator("queue_backend")
    @classmethod
    def _queue_backend(cls, value: str) -> str:
        if value not in {"local", "celery"}:
            raise ValueError("QUEUE_BACKEND must be 'local' or 'celery'")
        return value

    @field_validator("storage_backend")
    @classmethod
    def _storage_backend(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"local", "s3", "r2"}:
            raise ValueError("STORAGE_BACKEND must be 'local', 's3' or 'r2'")
        return value

    @field_validator("vision_anomaly_backend")
    @classmethod
    def _vision_backend(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"auto", "torch", "onnx", "pulmonary"}:
            raise ValueError("VISION_ANOMALY_BACKEND must be auto, torch, onnx or pulmonary")
        return value

    @field_validator("nlp_runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if value not in {"auto", "torch", "onnx"}:
            raise ValueError("NLP_RUNTIME must be auto, torch or onnx")
        return value

    @field_validator("frontend_url")
    @classmethod
    def _frontend_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("FRONTEND_URL must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _defaults_and_secrets(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'medsight.db'}"
        if self.storage_dir is None:
            self.storage_dir = self.data_dir / "uploads"
        if self.chroma_dir is None:
            self.chroma_dir = self.data_dir / "chroma"
        if self.audit_spool_dir is None:
            self.audit_spool_dir = self.data_dir / "audit-spool"
        if self.secrets_file is None:
            self.secrets_file = self.data_dir / ".secrets.json"
        if self.model_cache_dir is None:
            self.model_cache_dir = self.data_dir / "model-cache"
        if self.vision_model_dir is None:
            self.vision_model_dir = self.models_dir / "vision" / "v1"
        if self.nlp_model_dir is None:
            self.nlp_model_dir = self.models_dir / "nlp" / "minilm-ner-1.1"
        _platform_defaults(self)
        if self.vision_anomaly_backend == "pulmonary":
            _check_pulmonary(self)
        if self.environment is Environment.PRODUCTION:
            _require_strong_secrets(self)
        else:
            _fill_dev_secrets(self)
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def docs_on(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served (DOCS_ENABLED)."""
        return not self.is_production if self.docs_enabled is None else self.docs_enabled

    @cached_property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_size_mb * 1024 * 1024)

    @cached_property
    def max_request_body_bytes(self) -> int:
        return int(max(self.max_request_body_mb, self.max_upload_size_mb + 1) * 1024 * 1024)

    @cached_property
    def dicomweb_max_request_bytes(self) -> int:
        return int(max(self.dicomweb_max_request_mb, self.max_upload_size_mb + 1) * 1024 * 1024)


def _platform_defaults(settings: Settings) -> None:
    """Defaults that follow from other settings or from where the service runs."""
    spaces = on_hf_spaces()
    if not settings.trusted_proxies and spaces:
        settings.trusted_proxies = list(_SPACES_PROXIES)
    if settings.frame_ancestors is None:
        settings.frame_ancestors = _SPACES_FRAME_ANCESTORS if spaces else "'none'"
    if settings.frontend_url:
        parts = urlsplit(settings.frontend_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in settings.allowed_origins:
            settings.allowed_origins = [*settings.allowed_origins, origin]
    if settings.storage_backend == "r2":
        # Cloudflare R2 speaks the S3 API: the s3 backend with R2's endpoint and region.
        if not settings.s3_endpoint_url:
            if not settings.r2_account_id:
                raise ConfigError(
                    "STORAGE_BACKEND=r2 needs R2_ACCOUNT_ID (or S3_ENDPOINT_URL set to the "
                    "bucket's R2 endpoint), plus S3_BUCKET, S3_ACCESS_KEY_ID and "
                    "S3_SECRET_ACCESS_KEY from an R2 API token."
                )
            settings.s3_endpoint_url = _R2_ENDPOINT.format(account=settings.r2_account_id)
        if settings.s3_region == "us-east-1":
            settings.s3_region = "auto"
        settings.storage_backend = "s3"


def _check_pulmonary(settings: Settings) -> None:
    """The VGG16 -> VAE -> ViT path needs a VGG16 checkpoint and VGG16's ImageNet weights."""
    model_dir = settings.vision_model_dir
    assert model_dir is not None  # noqa: S101 - set by the validator
    problems = []
    weights = settings.vision_vgg16_weights
    if weights is None or not weights.is_file():
        problems.append(
            "VISION_VGG16_WEIGHTS must name torchvision's VGG16 ImageNet state dict "
            f"(vgg16-397923af.pth){f'; {weights} does not exist' if weights else ''}"
        )
    try:
        backbone = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))["backbone"]
    except (OSError, ValueError, KeyError):
        backbone = None
    if backbone != "vgg16":
        problems.append(
            f"VISION_MODEL_DIR ({model_dir}) must hold a VGG16 checkpoint (`medsight train vision "
            f"--backbone vgg16`), not {backbone or 'nothing readable'}"
        )
    if problems:
        raise ConfigError(
            "VISION_ANOMALY_BACKEND=pulmonary (the VGG16 -> VAE -> ViT scorer) cannot start: "
            + "; ".join(problems)
            + ". Neither ships with MedSight; VISION_ANOMALY_BACKEND=auto uses the shipped "
            "EfficientNet-Lite0 checkpoint."
        )


def _weak_secret_reason(value: str) -> str | None:
    if not value:
        return "is missing"
    if len(value) < _MIN_SECRET_LEN:
        return f"is shorter than {_MIN_SECRET_LEN} characters"
    lowered = value.lower()
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        return "looks like a placeholder"
    return None


def _require_strong_secrets(settings: Settings) -> None:
    problems = []
    for name in _SECRETS:
        reason = _weak_secret_reason(getattr(settings, name))
        if reason:
            problems.append(f"{name.upper()} {reason}")
    values = [getattr(settings, name) for name in _SECRETS if getattr(settings, name)]
    if len(set(values)) != len(values):
        problems.append("SECRET_KEY, JWT_SECRET_KEY and AUDIT_HMAC_KEY must all differ")
    if problems:
        raise ConfigError(
            "Refusing to start in production: "
            + "; ".join(problems)
            + ". Set each to a random value of at least 32 characters, for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )


_SECRETS = ("secret_key", "jwt_secret_key", "audit_hmac_key")


def _fill_dev_secrets(settings: Settings) -> None:
    """Generate missing development secrets once and keep them in a local file across restarts."""
    if all(getattr(settings, name) for name in _SECRETS):
        return
    path = settings.secrets_file
    assert path is not None  # noqa: S101 - set by the validator above
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
    changed = False
    for name in _SECRETS:
        if getattr(settings, name):
            continue
        if not stored.get(name):
            stored[name] = secrets.token_urlsafe(48)
            changed = True
        setattr(settings, name, stored[name])
    if changed:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # Created 0600 (O_EXCL): the secrets are never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(stored))
        tmp.replace(path)


def get_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and `.env`), with keyword overrides for tests."""
    return Settings(**overrides)
