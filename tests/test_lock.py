"""The environment is the lock: every package at its locked version, nothing missing or extra,
and the locks still satisfy pyproject.toml's ranges. A drift fails here, in CI, not in a user's
traceback."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "check_lock.py"
CPU_LOCK = REPO / "requirements" / "cpu.lock"
GPU_LOCK = REPO / "requirements" / "gpu.lock"
# The lock's platform (scripts/lock.sh): markers are judged as pip would judge them there.
LOCK_PLATFORM = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
                 "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                 "implementation_name": "cpython", "platform_python_implementation": "CPython"}
# `pip check`'s complaints that are on purpose, each explained in the README ("The lock").
# pyiqa (MUSIQ) declares every metric's and its own development's dependencies; the locks keep
# what pyiqa.archs.musiq_arch imports (requirements/overrides.txt, README "The lock").
PYIQA_LEFT_OUT = ("bitsandbytes", "facexlib", "future", "openai-clip", "pre-commit", "ruff", "scikit-image", "tensorboard")
EXPLAINED = {"dlr-moge 2.0.0 requires gradio, which is not installed."} | {
    f"pyiqa 0.1.16 requires {name}, which is not installed." for name in PYIQA_LEFT_OUT
}


def check(lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(lock)], capture_output=True, text=True, timeout=120)


def _check_lock_module():
    """scripts/check_lock.py, the parser setup.sh runs, imported rather than written again."""
    spec = importlib.util.spec_from_file_location("check_lock", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pins_of = _check_lock_module().parse_pins


def pins(lock: Path) -> dict[str, str]:
    return pins_of(lock.read_text())


def test_the_environment_is_the_cpu_lock():
    run = check(CPU_LOCK)
    assert run.returncode == 0, run.stderr
    assert f"the environment matches, {len(pins(CPU_LOCK))} packages" in run.stderr


def test_a_missing_extra_or_moved_package_is_one_line_each(tmp_path):
    lock = tmp_path / "drifted.lock"
    text = CPU_LOCK.read_text()
    numpy = pins(CPU_LOCK)["numpy"]
    text = re.sub(r"^zipp==[^\n]*\n(?:    --hash[^\n]*\n)*", "", text, flags=re.M)  # installed, not locked
    text = text.replace(f"\nnumpy=={numpy} ", "\nnumpy==1.0.0 ")  # locked at another version
    text += "datagen-no-such-package==1.0\n"  # locked, not installed
    lock.write_text(text)
    run = check(lock)
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith(f"{lock}: ") and "differs" not in ln]
    assert sorted(lines) == sorted([
        f"{lock}: missing: datagen-no-such-package==1.0",
        f"{lock}: other version: numpy {numpy} (lock: 1.0.0)",
        f"{lock}: not in the lock: zipp {pins(CPU_LOCK)['zipp']}",
    ]), run.stderr
    assert "differs in 3 package(s)" in run.stderr


def test_a_file_that_is_not_a_lock_is_refused(tmp_path):
    (tmp_path / "empty.lock").write_text("# nothing pinned\n")
    run = check(tmp_path / "empty.lock")
    assert run.returncode != 0 and "not a lock file" in run.stderr
    assert check(tmp_path / "absent.lock").returncode == 2


def test_pip_check_complains_only_of_what_the_readme_explains():
    run = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    complaints = {ln.strip() for ln in run.stdout.splitlines() if ln.strip()}
    assert complaints <= EXPLAINED, complaints - EXPLAINED
    readme = (REPO / "README.md").read_text()
    assert "gradio" in readme and "pip check" in readme and all(name in readme for name in PYIQA_LEFT_OUT)


def test_every_locked_package_has_a_hash():
    for lock in (CPU_LOCK, GPU_LOCK):
        entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
        for entry in entries[1:]:
            assert "--hash=sha256:" in entry, f"{lock.name}: {entry.splitlines()[0]}"


def _requirements(extras: list[str]) -> list[Requirement]:
    """pyproject.toml's dependencies and those of `extras`, self-references expanded."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs, todo, seen = [Requirement(r) for r in project["dependencies"]], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "datagen":
                todo += sorted(req.extras)
            else:
                reqs.append(req)
    return reqs


@pytest.mark.parametrize("lock,extras", [(CPU_LOCK, ["dev", "gsam", "moge"]), (GPU_LOCK, ["gpu"])], ids=["cpu", "gpu"])
def test_the_locks_satisfy_pyprojects_ranges(lock, extras):
    """A range changed in pyproject.toml without `bash scripts/lock.sh` fails here."""
    locked = pins(lock)
    for req in _requirements(extras):
        if req.marker and not req.marker.evaluate(LOCK_PLATFORM):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{lock.name} lacks {req} (pyproject.toml): run bash scripts/lock.sh --keep"
        assert Version(locked[name]) in req.specifier, f"{lock.name}: {name}=={locked[name]} is outside {req}"


def test_the_gpu_lock_is_the_cuda_set():
    locked = pins(GPU_LOCK)
    assert {"torch", "vllm", "diffusers", "transformers", "peft", "dlr-moge"} <= set(locked)
    assert any(name.startswith("nvidia-") for name in locked)  # CUDA torch's libraries
    assert "gradio" not in locked and "gradio" not in pins(CPU_LOCK)  # requirements/overrides.txt


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_setup_splits_the_lock_into_pip_wheels_and_the_sdist(tmp_path):
    """setup.sh's awk: the pip and groundingdino-py entries alone, everything else in one file."""
    script = (REPO / "scripts" / "setup.sh").read_text()
    entry = re.search(r"^entry\(\) \{ (awk .*) \"\$LOCK\"; \}$", script, re.M).group(1)
    rest = re.search(r"^(awk '/\^\[A-Za-z0-9\]/ .*) \"\$LOCK\" >", script, re.M).group(1)
    out = {}
    for name, cmd in (("pip", entry.replace("$1", "pip")), ("gd", entry.replace("$1", "groundingdino-py")), ("rest", rest)):
        out[name] = subprocess.run(["bash", "-c", f"{cmd} {CPU_LOCK}"], capture_output=True, text=True, check=True).stdout
    assert list(pins_of(out["pip"])) == ["pip"] and list(pins_of(out["gd"])) == ["groundingdino-py"]
    assert "--hash=sha256:" in out["pip"] and "--hash=sha256:" in out["gd"]
    assert set(pins_of(out["rest"])) == set(pins(CPU_LOCK)) - {"pip", "groundingdino-py"}
