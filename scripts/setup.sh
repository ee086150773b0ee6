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
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import open3d, ray, datagen.stages" >/dev/null
echo "datagen ready: .venv/bin/datagen" >&2
