#!/usr/bin/env bash
# Re-resolve requirements/cpu.lock and requirements/gpu.lock with uv: every direct and
# transitive dependency pinned, with hashes, for the platform the README supports (Linux
# x86_64, glibc 2.36 as on Debian 12, Python 3.11), resolved on any machine.
#
#   bash scripts/lock.sh                 # the newest versions pyproject.toml's ranges allow
#   bash scripts/lock.sh --keep          # keep today's pins where they still fit (after a range change)
#   bash scripts/lock.sh --upgrade-package transformers   # move one package, keep the rest
#
# Then `bash scripts/setup.sh && .venv/bin/python -m pytest -q` must pass on the new lock
# before it is committed (README, "The lock").
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.8"
PYTHON="${PYTHON:-python3}"
TOOLS=".lock-tools"  # uv lives outside .venv, which must hold exactly the lock

if ! "$TOOLS/bin/uv" --version 2>/dev/null | grep -q "^uv $UV_VERSION"; then
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q "uv==$UV_VERSION"
fi

upgrade=(--upgrade)
if [ "${1:-}" = "--keep" ]; then upgrade=(); shift; fi
if [ "${1:-}" = "--upgrade-package" ]; then upgrade=(); fi

# Wheels only, but for groundingdino-py, which publishes no wheel: nothing else may build on
# the user's machine. Overrides drop what the locks leave out (requirements/overrides.txt).
common=(
    --python-version 3.11 --python-platform x86_64-manylinux_2_36
    --generate-hashes --only-binary :all: --override requirements/overrides.txt
    --custom-compile-command "bash scripts/lock.sh" --quiet
)
"$TOOLS/bin/uv" pip compile pyproject.toml requirements/cpu.in --extra dev --extra gsam --extra moge \
    --no-binary groundingdino-py "${common[@]}" "${upgrade[@]}" "$@" -o requirements/cpu.lock
"$TOOLS/bin/uv" pip compile pyproject.toml requirements/gpu.in --extra gpu \
    "${common[@]}" "${upgrade[@]}" "$@" -o requirements/gpu.lock

for lock in requirements/cpu.lock requirements/gpu.lock; do
    echo "$lock: $(grep -c '^[A-Za-z0-9].*==' "$lock") packages" >&2
done
