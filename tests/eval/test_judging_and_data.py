"""The judges on tiny random-weight models: known answers through `score_sample` (an output whose
subject crops are the identity images scores DINO-I and SigLIP-I 100; depth MSE is 0 when the
output's depth is the condition's, and only subject pixels count), the eval modes' conditioning,
and `datagen eval data` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datagen.eval.config import EVAL_MODES, load_eval_config
from datagen.eval.generation import condition, prompt_for
from datagen.eval.judging import Judges, score_sample
from datagen.final.read import iter_final_samples
from datagen.train.config import load_train_config
from helpers import run_cli

SIZE = 64
BOXES = [[4, 6, 20, 22], [30, 28, 46, 44]]


class ConditionDepth:
    """A depth estimator that returns a fixed map (what the output's depth is in the test)."""

    def __init__(self, depth: np.ndarray) -> None:
        self.depth = depth

    def predict(self, images: np.ndarray) -> list[np.ndarray]:
        return [self.depth.copy() for _ in images]


@pytest.fixture(scope="module")
def judges(tiny_models) -> Judges:
    return Judges.load(load_eval_config("eval_model_tiny", [f"models_dir={tiny_models}"]), depth=False)


def decoded_sample(rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    output = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((2, SIZE, SIZE), bool)
    for i, (x0, y0, x1, y1) in enumerate(BOXES):
        masks[i, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = True
    depth = rng.uniform(1.0, 5.0, (SIZE, SIZE)).astype(np.float32)
    identities = np.stack([output[y0:y1, x0:x1] for x0, y0, x1, y1 in BOXES])
    meta = {"width": SIZE, "height": SIZE, "prompt": {"full": "a red cube and a blue ball", "background": "a room"},
            "subjects": [{"box_2d": b} for b in BOXES]}  # fmt: skip
    return {"json": meta, "masks": masks, "depth": depth, "identities": identities}, output


def test_identity_crops_score_100_and_the_conditioning_depth_scores_0(judges):
    decoded, output = decoded_sample(np.random.default_rng(0))
    judges.depth_model = ConditionDepth(decoded["depth"] * 3.0)  # another metric scale, same relative depth
    scores = score_sample(judges, decoded, {"masks_depth": output})["masks_depth"]
    assert scores["dino_i"] == pytest.approx(100.0, abs=1e-3) and scores["siglip_i"] == pytest.approx(100.0, abs=1e-3)
    assert scores["depth_mse"] == pytest.approx(0.0, abs=1e-12) and scores["depth_metric_mse"] == pytest.approx(0.0, abs=1e-9)
    assert scores["depth_pixels"] == int(decoded["masks"].any(axis=0).sum())  # subject pixels only
    assert 0.0 <= scores["clip_iqa"] <= 100.0 and np.isfinite(scores["musiq"]) and np.isfinite(scores["siglip_t"])

    # Depth outside the subjects never counts; inside it does.
    outside = decoded["depth"].copy()
    outside[~decoded["masks"].any(axis=0)] = 50.0
    judges.depth_model = ConditionDepth(outside)
    assert score_sample(judges, decoded, {"m": output})["m"]["depth_mse"] == pytest.approx(0.0, abs=1e-12)
    inside = decoded["depth"].copy()
    inside[decoded["masks"][0]] = 50.0
    judges.depth_model = ConditionDepth(inside)
    assert score_sample(judges, decoded, {"m": output})["m"]["depth_mse"] > 1e-3

    shuffled = output.copy()
    shuffled[BOXES[0][1] : BOXES[0][3], BOXES[0][0] : BOXES[0][2]] = 255 - shuffled[BOXES[0][1] : BOXES[0][3], BOXES[0][0] : BOXES[0][2]]
    assert score_sample(judges, decoded, {"m": shuffled})["m"]["dino_i"] < scores["dino_i"] - 1e-3


def test_every_eval_mode_conditions_like_datagen_sample(finished_run):
    train = load_train_config("train_tiny")
    decoded = next(iter_final_samples(finished_run))
    sample = {"json": decoded.meta, "masks": decoded.masks, "depth": decoded.depth, "identities": decoded.identities}
    controls = {}
    for mode in EVAL_MODES:
        control, ids = condition(sample, mode, train)
        assert control.shape == (train.resolution, train.resolution, 3) and ids.shape[1:] == (train.identity_size, 3)
        controls[mode] = control
    assert not np.array_equal(controls["masks_depth"][..., 2], controls["full_depth"][..., 2])
    assert not controls["boxes2d"][..., 2].any() and controls["boxes3d"][..., 2].any()
    meta = decoded.meta
    assert prompt_for(meta, "masks_depth", "paper") == f"Place these subjects in {meta['prompt']['background']}"
    assert prompt_for(meta, "boxes3d", "paper") == f"Place these subjects to compose: {meta['prompt']['full']}"
    assert prompt_for(meta, "boxes3d", "background") == prompt_for(meta, "masks_depth", "paper")


def test_eval_data_reports_distributions_per_subject_count(tmp_path, tiny_models, finished_run):
    out = tmp_path / "quality"
    args = ["eval", "data", str(finished_run), "--config", "eval_model_tiny", "--set", f"models_dir={tiny_models}", "--out", str(out)]
    done = run_cli(*args, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    samples = list(iter_final_samples(finished_run))
    assert report["images"] == len(samples) and report["subjects"] == sum(len(s.subjects) for s in samples)
    counts = {str(len(s.subjects)) for s in samples}
    for metric in ("dino_i", "siglip_i", "clip_iqa", "musiq"):
        per = report["distributions"][metric]
        assert set(per) == {"all", *counts}
        assert per["all"]["p10"] <= per["all"]["p50"] <= per["all"]["p90"]
    assert (out / "bottom.png").is_file() and "## dino_i" in (out / "report.md").read_text()

    import pandas as pd

    assert len(pd.read_parquet(out / "subjects.parquet")) == report["subjects"]
    again = run_cli(*args)  # never over a finished report
    assert again.returncode == 2 and "not an empty directory" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    missing = run_cli("eval", "data", str(tmp_path / "nope"), "--config", "eval_model_tiny", "--out", str(tmp_path / "q2"))
    assert missing.returncode == 2 and "not a datagen run" in missing.stderr and not (tmp_path / "q2").exists()

    # The dataset card states the report's figures.
    exported = run_cli("export", "hf", str(finished_run), "--out", str(tmp_path / "hf"), "--quality", str(out), timeout=600)
    assert exported.returncode == 0, exported.stderr[-2000:]
    card = (tmp_path / "hf" / "README.md").read_text()
    dino = report["distributions"]["dino_i"]["all"]
    assert "## Quality" in card and f"| dino_i | all | {dino['n']} | {dino['mean']:.2f} |" in card
    bad = run_cli("export", "hf", str(finished_run), "--out", str(tmp_path / "hf2"), "--quality", str(tmp_path / "q2"))
    assert bad.returncode == 2 and "--quality" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "hf2").exists()
