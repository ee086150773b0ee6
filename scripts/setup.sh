#!/usr/bin/env bash
# Set up datagen in ./.venv from a fresh clone, exactly as the lock says: the Debian packages
# the wheels link, then every Python package at its locked version, checked against its hash.
#
#   bash scripts/setup.sh         # requirements/cpu.lock: torch + torchvision (they run on a
#                                 # CPU), the test tools, every backend but vLLM, gsam, MoGe
#   bash scripts/setup.sh --gpu   # requirements/gpu.lock: CUDA torch, vLLM, every model backend
#
# Safe to run again: it brings .venv back to the lock, removing what the lock does not name.
# The locks are for Linux x86_64 and Python 3.11; `bash scripts/lock.sh` re-resolves them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SET="cpu"
if [ "${1:-}" = "--gpu" ]; then SET="gpu"; fi
LOCK="requirements/$SET.lock"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "setup.sh: $LOCK is resolved for Python 3.11, and $PYTHON is $("$PYTHON" -V 2>&1 || echo missing);" \
         "run PYTHON=python3.11 bash scripts/setup.sh, or install unlocked: pip install -e '.[dev]'" >&2
    exit 1
fi

# Debian packages the wheels link: open3d links libusb-1.0; opencv-python (groundingdino and
# MoGe import cv2) links libGL and GLib; the test of `datagen browse` drives headless Chromium.
# Debian stable only ships security fixes for these, so they are named, not pinned.
LDCONFIG="$(command -v ldconfig || echo /sbin/ldconfig)"
has_lib() { "$LDCONFIG" -p 2>/dev/null | grep -q "$1"; }
need=()
has_lib "libusb-1.0.so.0" || need+=(libusb-1.0-0)
has_lib "libGL.so.1" || need+=(libgl1)
has_lib "libgthread-2.0.so.0" || need+=(libglib2.0-0)
if [ "$SET" = "cpu" ] && ! { command -v chromedriver >/dev/null 2>&1 && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; }; then
    need+=(chromium chromium-driver)
fi
if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    echo "installing Debian packages: ${need[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -q --require-hashes --no-deps)
parts="$(mktemp -d)"
trap 'rm -rf "$parts"' EXIT

# A lock entry is its `name==version` line and the hash lines continued after it.
entry() { awk -v pin="^$1==" '$0 ~ pin {p = 1} p {print} p && !/\\$/ {p = 0}' "$LOCK"; }
entry pip > "$parts/pip.txt"
entry groundingdino-py > "$parts/build.txt"
awk '/^[A-Za-z0-9]/ {skip = ($1 ~ /^(pip|groundingdino-py)==/)} !skip' "$LOCK" > "$parts/wheels.txt"

# The locked pip first, then every wheel (torch and torchvision among them: ~1 min, 5.4 GB).
"${PIP[@]}" -r "$parts/pip.txt"
"${PIP[@]}" -r "$parts/wheels.txt"
# groundingdino-py publishes only an sdist, built against the torch just installed (with build
# isolation pip would fetch a second, unlocked torch to build it); ~15 s.
if [ -s "$parts/build.txt" ]; then
    "${PIP[@]}" --no-build-isolation -r "$parts/build.txt"
fi
# datagen itself, from the checkout, built by the locked hatchling.
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python scripts/check_lock.py "$LOCK" --remove-extra

.venv/bin/python -c "import open3d, ray, datagen.stages" >/dev/null
echo "datagen ready: .venv/bin/datagen ($LOCK)" >&2
