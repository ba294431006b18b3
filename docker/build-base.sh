#!/usr/bin/env bash
# Build the Dockerfile's base image locally from Debian packages: no image registry is needed.
# debootstrap (Debian 12 "bookworm", minbase + Python 3.11) -> a rootfs tarball -> `docker import`.
# The Debian mirror is the host's own apt source unless DEBIAN_MIRROR names one.
set -euo pipefail
TAG="${1:-medsight-base:bookworm}"
SUITE="${SUITE:-bookworm}"
if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$DEBIAN_MIRROR" ] || DEBIAN_MIRROR=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
if docker image inspect "$TAG" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
  echo "base image $TAG exists (REBUILD=1 to rebuild)"; exit 0
fi
command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap
rootfs=$(mktemp -d /var/tmp/medsight-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# python3 is 3.11 on bookworm; libgomp1 for torch/onnxruntime; a compiler and Python headers
# for the few locked packages published only as source (medspaCy's Cython helpers).
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-dev,build-essential,libgomp1,ca-certificates \
  "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >/dev/null
# Certificate authorities the host added locally (e.g. a TLS-inspecting egress proxy) are
# trusted inside too, so pip in the image build reaches the package index the host reaches.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null && [ -z "${NO_HOST_CA:-}" ]; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
