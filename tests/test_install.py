"""A plain (non-editable) wheel carries stages/, configs/ and cli.py under datagen/ and gives
a working `datagen` command: the classic packaging bug, tested."""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_contents_and_a_run_from_it(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = dist.glob("datagen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"datagen", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for needed in ("datagen/cli.py", "datagen/stages/__init__.py", "datagen/stages/boxes.py",
                   "datagen/configs/demo.yaml", "datagen/configs/sigma_set27k.yaml", "datagen/world/render.py",
                   "datagen/data_cards/sigma_set.md", "datagen/views/browser_assets/viewer.js", "datagen/views/browser_assets/viewer.css"):
        assert needed in names, needed
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "datagen = datagen.cli:main" in entry

    # A fresh venv holding just the wheel; its dependencies come from this environment.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    where = subprocess.run([str(py), "-c", "import datagen.stages, datagen.cli; print(datagen.stages.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(site), where
    run = subprocess.run(
        [str(env_dir / "bin" / "datagen"), "run", "--config", "demo", "--out", str(tmp_path / "r"), "--executor", "local",
         "--num-samples", "3", "--set", "run.width=96", "--set", "run.height=96", "--set", "stages.repose.identity_size=32"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r" / "final" / "shard-000000.tar").exists()
