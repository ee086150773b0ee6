"""Compare the running Python environment with a lock file; exit 1 on any drift.

    .venv/bin/python scripts/check_lock.py requirements/cpu.lock [--remove-extra]

Each difference is one line: a locked package that is missing, one installed at another
version, or one installed that the lock does not name (datagen itself, installed from the
checkout, is the only exception). `--remove-extra` uninstalls the unnamed ones first, as
scripts/setup.sh does, so the environment holds exactly the lock.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
SELF = "datagen"


def parse_pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` line of requirements-style text."""
    return {canonicalize_name(m.group(1)): m.group(2) for m in map(PIN.match, text.splitlines()) if m}


def locked(lock: Path) -> dict[str, str]:
    pins = parse_pins(lock.read_text())
    if not pins:
        raise SystemExit(f"{lock}: no 'name==version' lines: not a lock file")
    return pins


def installed() -> dict[str, str]:
    """name -> version of every distribution this interpreter sees (datagen left out)."""
    found = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) != SELF:
            found[canonicalize_name(name)] = dist.version
    return found


def same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def drift(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    problems = [f"missing: {n}=={v}" for n, v in sorted(pins.items()) if n not in have]
    problems += [
        f"other version: {n} {have[n]} (lock: {v})" for n, v in sorted(pins.items()) if n in have and not same_version(have[n], v)
    ]
    problems += [f"not in the lock: {n} {v}" for n, v in sorted(have.items()) if n not in pins]
    return problems


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    lock = Path(args[0])
    if not lock.is_file():
        print(f"{lock}: no such lock file", file=sys.stderr)
        return 2
    pins = locked(lock)
    if "--remove-extra" in argv:
        extra = sorted(n for n in installed() if n not in pins)
        if extra:
            print(f"removing what {lock} does not name: {', '.join(extra)}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *extra], check=True)
    problems = drift(pins, installed())
    for line in problems:
        print(f"{lock}: {line}", file=sys.stderr)
    if problems:
        print(f"{lock}: the environment differs in {len(problems)} package(s); bash scripts/setup.sh installs the lock", file=sys.stderr)
        return 1
    print(f"{lock}: the environment matches, {len(pins)} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
