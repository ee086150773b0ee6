"""`datagen ingest` is kill -9 safe and deterministic: an AnyInsertion-layout dataset (bad rows
included) ingested without interruption, and the same ingest killed with SIGKILL (the driver,
Ray and its workers: the whole process group) once some of its shards are finished and then
run again, end with the same samples, byte for byte, the same rejected rows for the same
reasons, and the shards finished before the kill untouched by the resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
from test_sources import AI_FEATURES, img, picture

from helpers import _env, run_cli

SIZE = 64
ROWS = 8
SHARD_SIZE = 2  # 4 shards
SHARDS = ROWS // SHARD_SIZE
# Rows 0, 2, 3, 6, 7 are good; shard 2 (rows 4, 5) is all bad: an empty final shard.
BAD = {1: "bad_row:missing_field", 4: "bad_row:empty_mask", 5: "bad_row:undecodable_image"}


def _ray_processes_of(run_dir) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("anyins")
    rows = []
    for k in range(ROWS):
        tar, tar_m = picture(k, SIZE, SIZE)
        ref, ref_m = picture(50 + k, 40, 32)
        rows.append(dict(id=f"train/object/{k}", split="train", category="object", main_label=f"cube{k}",
                         ref_image=img(ref), ref_mask=img(ref_m), tar_image=img(tar), tar_mask=img(tar_m)))  # fmt: skip
    rows[1]["main_label"] = None
    rows[4]["tar_mask"] = img(np.zeros((SIZE, SIZE), bool))
    rows[5]["tar_image"] = {"bytes": b"not a picture", "path": None}
    (root / "data").mkdir()
    table = datasets.Dataset.from_list(rows, features=AI_FEATURES)
    # two parquet files, as on the hub: row order is file order, then row order
    table.select(range(3)).to_parquet(str(root / "data" / "train-00000-of-00002.parquet"))
    table.select(range(3, ROWS)).to_parquet(str(root / "data" / "train-00001-of-00002.parquet"))
    return root


def members(run: Path) -> dict[str, bytes]:
    """Every member of every final shard, by name; a name in two shards fails here."""
    out: dict[str, bytes] = {}
    for shard in sorted((run / "final").glob("shard-*.tar")):
        with tarfile.open(shard) as t:
            for m in t.getmembers():
                assert m.name not in out, f"{m.name} twice in {run}/final"
                out[m.name] = t.extractfile(m).read()
    return out


def rejections(run: Path) -> dict[tuple[str, str], list]:
    """(stage, shard file) -> the rejected [key, reason]s its marker records."""
    markers = [*(run / "stages").glob("*/shard-*.done.json"), *(run / "final").glob("shard-*.stats.json")]
    return {(p.parent.name, p.name): json.loads(p.read_text())["rejected_keys"] for p in markers}


def final_figures(run: Path) -> dict[str, dict]:
    """The final stats without the timings (which no two runs share)."""
    keys = ("fingerprint", "input_sha256", "sha256", "size", "samples_in", "samples_written", "samples_rejected",
            "rejected", "rejected_subjects", "subjects_histogram")  # fmt: skip
    return {p.name: {k: json.loads(p.read_text())[k] for k in keys} for p in sorted((run / "final").glob("*.stats.json"))}


def finished(run: Path) -> list[int]:
    """Final shards done: their stats marker, committed last, is there."""
    return sorted(int(p.name.split(".")[0].split("-")[1]) for p in (run / "final").glob("shard-*.stats.json"))


def stamps(run: Path, shards: list[int]) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime_ns, size) of every file of these shards, in every stage and in final/."""
    names = {f"shard-{s:06d}" for s in shards}
    files = [p for p in run.glob("*/**/shard-*") if p.is_file() and p.name.split(".")[0] in names]
    return {str(p.relative_to(run)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in files}


def test_kill_9_mid_ingest_then_resume_gives_the_uninterrupted_result(tmp_path, tiny_models, source):
    # One torch thread everywhere: the local executor would otherwise use every core and Ray's
    # workers one, and float32 depth differs in its last bits with the thread count.
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    args = ["ingest", "anyinsertion", str(source), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}",
            "--set", f"run.shard_size={SHARD_SIZE}"]  # fmt: skip

    reference = tmp_path / "A"
    done = run_cli(*args, "--out", str(reference), "--executor", "local", env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert finished(reference) == list(range(SHARDS))

    # B: on Ray, one worker, so that shards finish one after another; killed (driver, Ray and
    # its workers: the process group) once one final shard is done and before the last.
    run, log = tmp_path / "B", tmp_path / "B.stderr"
    command = [sys.executable, "-m", "datagen.cli", *args, "--out", str(run), "--workers", "1"]
    with open(log, "w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
        deadline = time.time() + 300  # Ray starts slowly beside other tests
        while time.time() < deadline and proc.poll() is None and not finished(run):
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"exited {proc.returncode} before the kill:\n{log.read_text()[-3000:]}"
    before = finished(run)
    assert 1 <= len(before) < SHARDS, f"killed with final shards {before} done: not mid-run"
    stamped = stamps(run, before)
    assert any(name.startswith("final/") for name in stamped) and any(name.startswith("stages/") for name in stamped)
    # What was committed before the kill is complete and the same as A's, never half a shard.
    for shard in before:
        name = f"final/shard-{shard:06d}.tar"
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name

    again = run_cli(*args, "--out", str(run), "--workers", "1", env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert finished(run) == list(range(SHARDS))

    # The shards done before the kill were reused, not made again.
    assert stamps(run, before) == stamped
    # The same samples, member for member: no key lost, none doubled (members() checks).
    got, want = members(run), members(reference)
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []
    keys = sorted({name.split(".")[0] for name in want})
    assert 1 <= len(keys) <= ROWS - len(BAD)
    assert not {int(key.split("_")[1]) for key in keys} & set(BAD)  # sample i is row i
    # The same rows rejected for the same reasons, at the same stages, and the same final stats.
    assert rejections(run) == rejections(reference)
    source_rejects = {tuple(r) for (stage, _), keys_ in rejections(run).items() if stage == "source" for r in keys_}
    assert {(int(key.split("_")[1]), reason) for key, reason in source_rejects} == set(BAD.items())
    assert final_figures(run) == final_figures(reference)
    assert not list(run.rglob(".*.tmp-*"))
    assert not _ray_processes_of(run)
