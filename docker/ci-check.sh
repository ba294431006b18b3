#!/usr/bin/env bash
# CI: build the base (Debian packages) and the image, run it on a free loopback port with host
# networking only, wait for readiness, run the README's first request (one analysis) against it.
# Prints how long each step took. Needs root (dockerd) and the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=medsight:ci
t0=$(date +%s)
step() { echo "== docker: $1 ($(( $(date +%s) - t0 )) s since start)"; }

started_dockerd=""
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  dockerd --bridge=none --iptables=false --ip6tables=false --storage-driver=vfs \
    >/var/log/medsight-dockerd.log 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
wheels_pid=""; container=""
cleanup() {
  [ -z "$container" ] || docker rm -f "$container" >/dev/null 2>&1 || true
  [ -z "$wheels_pid" ] || kill "$wheels_pid" 2>/dev/null || true
  [ -z "$started_dockerd" ] || kill "$started_dockerd" 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "base image"
docker/build-base.sh medsight-base:bookworm

# Where the build finds CPU torch: TORCH_INDEX_URL if given, else pip's own find-links folder
# (served read-only on a loopback port for the build container, which shares the host network).
build_args=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  build_args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
else
  links=$(pip config get global.find-links 2>/dev/null || true)
  if [ -n "$links" ] && [ -d "$links" ]; then
    port=$(free_port)
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$links" >/dev/null 2>&1 &
    wheels_pid=$!
    build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$port/")
  fi
fi
step "image build"
DOCKER_BUILDKIT=0 docker build -q --network host "${build_args[@]}" -t "$TAG" . >/dev/null
step "image built ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"

port=$(free_port)
container=$(docker run -d --network host -e HOST=127.0.0.1 -e PORT="$port" \
  -e SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
  -e JWT_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
  -e AUDIT_HMAC_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
  -e RATE_LIMIT_LOGIN=100/minute "$TAG")
step "container started"
for _ in $(seq 600); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$container")
  [ "$status" = healthy ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$container")" = true ] || { docker logs "$container" | tail -50; exit 1; }
  curl -sf "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null || { docker logs "$container" | tail -50; exit 1; }
step "ready"
work=$(mktemp -d)
script=$(python3 -c 'import re,sys; t=open("README.md").read().split("\n## First request",1)[1].split("\n## ",1)[0]; print(re.findall(r"```bash\n(.*?)```", t, re.S)[0])')
(cd "$work" && MEDSIGHT="http://127.0.0.1:$port" IMG="$OLDPWD/backend/imaging/samples/chest-xray.png" \
  bash -euo pipefail -c "$script") | tee "$work/out.txt"
grep -q '"overall_status": "COMPLETE"' "$work/out.txt"
rm -rf "$work"
step "one analysis (README first request) done"
