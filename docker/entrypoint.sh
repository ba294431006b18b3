#!/bin/sh
# Container start: pick the data folder, seed the chat index built at image build, migrate, serve.
set -e
if [ -z "${DATA_DIR:-}" ]; then
  # Hugging Face Spaces mounts its persistent storage at /data; without it, the home folder.
  if [ -d /data ] && [ -w /data ]; then DATA_DIR=/data; else DATA_DIR="$HOME/data"; fi
  export DATA_DIR
fi
mkdir -p "$DATA_DIR"
if [ ! -e "$DATA_DIR/chroma" ] && [ -z "${CHROMA_URL:-}" ] && [ -d /opt/medsight/seed/chroma ]; then
  cp -R /opt/medsight/seed/chroma "$DATA_DIR/chroma"
fi
medsight db upgrade
exec medsight serve --host "${HOST:-0.0.0.0}" --port "${PORT:-7860}"
