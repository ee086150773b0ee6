"""A real ingested run in training: `datagen ingest anyinsertion` on a small AnyInsertion-layout
dataset whose photographs are neither square nor the training size (80x56 and 56x72), mixed
with a generated run by curriculum stage as configs/train_sigma.yaml does (stage 1 draws from
both, stage 2 from the generated run only), through the trainer's own data path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml

from datagen.final.decode import decode_sample
from datagen.store.shards import read_tar
from datagen.train import data as D
from datagen.train.augment import AugmentDraw, build_example
from datagen.train.config import TrainConfig
from helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
# The AnyInsertion layout as tests/ingest writes it (features, pictures with their masks).
_spec = importlib.util.spec_from_file_location("ingest_test_sources", REPO / "tests" / "ingest" / "test_sources.py")
_sources = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sources)
AI_FEATURES, img, picture = _sources.AI_FEATURES, _sources.img, _sources.picture

SIZES = [(56, 80), (72, 56)]  # (height, width) by row parity; train_tiny trains at 64x64
ROWS = 6


@pytest.fixture(scope="module")
def ingested_run(tmp_path_factory, tiny_models) -> Path:
    root = tmp_path_factory.mktemp("ingested")
    rows = []
    for k in range(ROWS):
        h, w = SIZES[k % 2]
        tar, tar_m = picture(k, h, w)
        ref, ref_m = picture(50 + k, 40, 32)
        rows.append(dict(id=f"train/object/{k}", split="train", category="object", main_label=f"cube{k}",
                         ref_image=img(ref), ref_mask=img(ref_m), tar_image=img(tar), tar_mask=img(tar_m)))  # fmt: skip
    (root / "src" / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=AI_FEATURES).to_parquet(str(root / "src" / "data" / "train-00000-of-00001.parquet"))
    run = root / "run"
    done = run_cli("ingest", "anyinsertion", str(root / "src"), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}",
                   "--out", str(run), "--executor", "local", timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def ingested_samples(run: Path) -> list[dict]:
    out = []
    for shard in D.list_shards(run):
        out += [decode_sample(fields, key) for key, fields in sorted(read_tar(Path(shard)).items())]
    return out


def centroid(region: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(region)
    return np.array([xs.mean(), ys.mean()]) + 0.5  # continuous coordinates: pixel j covers [j, j + 1)


def test_ingested_samples_reach_the_training_size_aligned(ingested_run):
    samples = ingested_samples(ingested_run)
    assert len(samples) >= 4
    assert {(d["json"]["height"], d["json"]["width"]) for d in samples} == set(SIZES)  # their own sizes, kept
    for d in samples:
        meta = d["json"]
        assert meta["schema"] == "sigma-set/2" and [s["identity"]["source"] for s in meta["subjects"]] == ["reference"]
        ex = build_example(d, AugmentDraw("masks", None, 0, 1.0, 0), resolution=64, identity_size=32)
        assert ex["target"].shape == ex["control"].shape == (3, 64, 64) and ex["identities"].shape == (3, 32, 32)
        assert ex["n_subjects"] == 1
        x0, y0, side = ex["window"]
        mask = d["masks"][0]
        fg = d["image"][mask].astype(int).mean(axis=0)  # the picture's flat subject colour
        target = np.round((ex["target"].transpose(1, 2, 0) + 1) * 127.5)
        painted = np.abs(target - fg).max(axis=-1) < 40
        routed = np.round((ex["control"][0] + 1) * 127.5) == 10
        want = (centroid(mask) - [x0, y0]) * 64 / side  # the source mask's centroid through the window
        assert np.abs(centroid(routed) - want).max() < 0.75, (d["key"], centroid(routed), want)
        assert np.abs(centroid(painted) - want).max() < 0.75, (d["key"], centroid(painted), want)
        structure = np.round((ex["control"][2] + 1) * 127.5) > 0
        assert not (structure & ~routed).any()  # the depth lies on the subject, nowhere else

    # The trainer's own stream over the ingested shards: 1-subject examples at the training size.
    cfg = TrainConfig(seed=0, resolution=64, identity_size=32, batch_size=2, shuffle_buffer=4)
    stats = D.DataStats()
    batch = next(iter(D.training_batches(D.list_shards(ingested_run), cfg, stats=stats)))
    assert tuple(batch["target"].shape) == tuple(batch["control"].shape) == (2, 3, 64, 64)
    assert tuple(batch["identities"].shape) == (2, 3, 32, 32) and batch["n_subjects"] == 1
    assert not [k for k in stats.as_dict() if k.startswith("rejected")]


def test_a_tiny_train_mixes_the_ingested_run_into_stage_one_only(tmp_path, tiny_models, finished_run, ingested_run):
    config = yaml.safe_load((REPO / "configs" / "train_tiny.yaml").read_text())
    config["data"] = [{"path": str(finished_run), "name": "generated"}, {"path": str(ingested_run), "name": "ingested"}]
    config["curriculum"] = [  # train_sigma.yaml's shape: ingested data in the first stage only
        {"steps": 3, "min_subjects": 1, "max_subjects": 10, "data_weights": {"generated": 1, "ingested": 1}},
        {"steps": 2, "min_subjects": 1, "max_subjects": 10, "data_weights": {"generated": 1}},
    ]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_cli("train", "--config", str(path), "--out", str(tmp_path / "lora"), "--set", f"models_dir={tiny_models}", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 5 and result["lora"] and Path(result["lora"]).is_file()
    assert np.isfinite(result["last_loss"])
    mix = result["mix"]
    assert set(mix["stage 1"]) == {"generated", "ingested"} and mix["stage 1"]["ingested"] > 0
    assert set(mix["stage 2"]) == {"generated"}
    drew = [line for line in done.stderr.splitlines() if " drew " in line]
    assert len(drew) == 2, done.stderr[-2000:]
    assert drew[0].startswith("stage 1 drew generated") and "ingested" in drew[0]
    assert drew[1].startswith("stage 2 drew generated") and "ingested" not in drew[1]
    assert "data: skipped" not in done.stderr  # no ingested sample rejected on the way
