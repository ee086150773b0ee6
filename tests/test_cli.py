"""The real command, end to end through Ray: a valid dataset, resumable and deterministic."""

import io
import json
import tarfile

import numpy as np
import webdataset as wds
from PIL import Image

from helpers import final_bytes, run_cli
from datagen.config import load_config
from datagen.final.validate import validate_run


def test_run_builds_a_valid_dataset_and_resumes(small_config_file, tmp_path):
    run = tmp_path / "RUN"
    r = run_cli("run", "--config", str(small_config_file), "--out", str(run))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    cfg = load_config(run / "run.yaml")
    count, errors = validate_run(run, cfg)
    assert errors == [] and count > 0
    shards = sorted((run / "final").glob("shard-*.tar"))
    assert [p.name for p in shards] == [f"shard-{i:06d}.tar" for i in range(3)]
    stats = [json.loads(p.with_suffix("").with_suffix(".stats.json").read_text()) for p in shards]
    assert sum(s["samples_written"] for s in stats) == count
    assert all(set(s) >= {"samples_written", "rejected", "subjects_histogram", "subjects_range", "wall_time_s"} for s in stats)
    assert stats[0]["subjects_range"] == [cfg.filters.min_subjects, cfg.filters.max_subjects]

    # Plain tarfile, as FORMAT.md promises.
    with tarfile.open(shards[0]) as t:
        names = t.getnames()
        key = names[0].split(".")[0]
        meta = json.loads(t.extractfile(f"{key}.json").read())
        depth = Image.open(io.BytesIO(t.extractfile(f"{key}.depth.png").read()))
        instances = Image.open(io.BytesIO(t.extractfile(f"{key}.instances.png").read()))
    assert meta["schema"] == "sigma-set/2" and depth.size == (128, 128) and depth.mode == "I;16" and instances.mode == "L"
    assert np.asarray(instances).max() == len(meta["subjects"])
    assert meta["truth"]["subjects"][0]["name"] == meta["subjects"][0]["name"]

    # webdataset, grouping members by key.
    rows = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    assert len(rows) == count
    assert all(set(row) - {"__key__", "__url__", "__local_path__"} == {"json", "png", "depth.png", "instances.png", "identities.png"} for row in rows)

    # status reports it.
    st = run_cli("status", str(run), "--json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["kept"] == count and status["final_shards"] == 3
    assert all(s["done"] == 3 and s["failed"] == 0 and s["pending"] == 0 for s in status["stages"])
    assert status["stages"][0]["samples_in"] == 12
    text = run_cli("status", str(run)).stdout
    assert "filter" in text and f"{count} samples kept" in text

    # The same command again: nothing is redone.
    again = run_cli("run", "--config", str(small_config_file), "--out", str(run))
    assert again.returncode == 0 and "nothing to do" in again.stderr

    # Determinism: one process without Ray, and Ray with one pool per stage (7 workers
    # instead of 2), give the same bytes as the fused Ray run.
    local = tmp_path / "LOCAL"
    r = run_cli("run", "--config", str(small_config_file), "--out", str(local), "--executor", "local")
    assert r.returncode == 0, r.stderr
    assert final_bytes(local) == final_bytes(run)
    per_stage = tmp_path / "PER_STAGE"
    r = run_cli("run", "--config", str(small_config_file), "--out", str(per_stage), "--set", "ray.fuse_cpu_stages=false")
    assert r.returncode == 0, r.stderr
    assert "workers: prompts=1, t2i=1, segment=1, depth=1, boxes=1, repose=1, idcheck=1, filter=1" in r.stderr
    assert final_bytes(per_stage) == final_bytes(run)


def test_the_users_line_with_defaults(tmp_path):
    # `datagen run --stages all --workers 64`: demo config, ./demo, workers capped with a notice.
    r = run_cli("run", "--stages", "all", "--workers", "64", "--num-samples", "6", "--set", "run.width=128",
                "--set", "run.height=128", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--workers 64 capped to" in r.stderr
    assert f"run directory: {tmp_path / 'demo'}" in r.stderr
    assert (tmp_path / "demo" / "final" / "shard-000000.tar").exists()
    # Run again with no --config: it resumes the run with its own run.yaml.
    again = run_cli("run", "--workers", "64", cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_stages_subset_then_the_rest(small_config_file, tmp_path):
    run = tmp_path / "RUN"
    r = run_cli("run", "--config", str(small_config_file), "--out", str(run), "--stages", "prompts,t2i",
                "--executor", "local")
    assert r.returncode == 0, r.stderr
    assert not (run / "final" / "shard-000000.tar").exists()
    st = json.loads(run_cli("status", str(run), "--json").stdout)
    by = {s["stage"]: s for s in st["stages"]}
    assert by["t2i"]["done"] == 3 and by["segment"]["pending"] == 3
    r = run_cli("run", "--out", str(run), "--stages", "segment,depth,boxes,repose,idcheck,filter")
    assert r.returncode == 0, r.stderr
    assert json.loads(run_cli("status", str(run), "--json").stdout)["final_shards"] == 3
