#!/usr/bin/env bash
# Set up datagen in ./.venv from a fresh clone: the Debian package Open3D needs, then the
# package with its test dependencies. Safe to run again (it only adds what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

# Open3D's wheel links libusb-1.0 (ENVIRONMENT.md); Debian ships it as libusb-1.0-0.
LDCONFIG="$(command -v ldconfig || echo /sbin/ldconfig)"
if ! "$LDCONFIG" -p 2>/dev/null | grep -q "libusb-1.0.so.0"; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    echo "installing libusb-1.0-0 (needed by open3d)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: 2.13.0 is the CPU build this project's machines carry as a local file;
# unpinned, pip would pull the newest CUDA build (GBs). Any torch >= 2.4 works: set
# DATAGEN_TORCH=torch for the registry's build on a GPU machine.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "${DATAGEN_TORCH:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import open3d, ray, datagen.stages" >/dev/null
echo "datagen ready: .venv/bin/datagen" >&2
