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
# torch and torchvision first, pinned as a matching pair from the registry: they run on the
# CPU, and torchvision (which segment-anything, groundingdino-py and MoGe import) works only
# with its own torch (ENVIRONMENT.md: not with the CPU torch file). ~54 s, 5.4 GB.
# DATAGEN_TORCH overrides (e.g. a CUDA index's build on a GPU machine).
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q ${DATAGEN_TORCH:-"torch==2.15.0" "torchvision==0.29.2"}
fi
.venv/bin/python -m pip install -q -e ".[dev]"
# The paper's segmentation stack (extra [gsam]): groundingdino-py is an sdist that must build
# against the torch above (with build isolation pip would fetch a second torch); ~15 s.
.venv/bin/python -m pip install -q --no-build-isolation "groundingdino-py==0.4.0" "segment-anything==1.0"
# Building Grounding DINO imports cv2 (groundingdino's visualizer module), and the opencv-python
# it requires links the system's libGL and GLib: Debian's libgl1 and libglib2.0-0.
if ! .venv/bin/python -c "import cv2" >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    echo "installing libgl1 and libglib2.0-0 (needed by opencv-python, which groundingdino imports)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libgl1 libglib2.0-0 >/dev/null
    .venv/bin/python -c "import cv2"  # still failing: say why
fi
# MoGe-2 (extra [moge]): its model code needs torch, huggingface_hub, dlr-utils3d and OpenCV
# (moge.utils.geometry_numpy imports cv2); its declared requirements add a web UI (gradio),
# trimesh and dlr-pipeline that datagen does not use, so `pip check` lists those as missing.
.venv/bin/python -m pip install -q --no-deps "dlr-moge==2.0.0"
.venv/bin/python -m pip install -q "dlr-utils3d==1.3" opencv-python
# The browser test of `datagen browse` drives Debian's headless Chromium through its driver.
if ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    echo "installing chromium and chromium-driver (for the test of datagen browse)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
.venv/bin/python -c "import open3d, ray, datagen.stages" >/dev/null
echo "datagen ready: .venv/bin/datagen" >&2
