"""depth on its real backends: MoGe-2 and a metric Depth Anything, as tiny random-weight models
loaded by their real ids from models_dir, and the conversions around them."""

from __future__ import annotations

import copy
import inspect
import json
import math
import shutil
import sys

import numpy as np
import pytest
import torch
import utils3d

from datagen.config import DEFAULT_DEPTH_MODELS, build_config
from datagen.errors import BackendUnavailable, UserError
from datagen.recipe.geometry import unproject_pixels
from datagen.models.depth_transformers import fov_camera
from datagen.models.hub import MODEL_KINDS
from datagen.models.moge import MOGE_FILE, depth_and_camera, import_moge
from datagen.models.tiny.depth import build_tiny_depth_anything, build_tiny_moge, tiny_moge2_config
from datagen.store.inflight import Rejected, Sample
from datagen.seeds import sample_seed
from helpers import SMALL
from stages.depth import DepthStage, camera_is_usable

MOGE_ID, DA_ID = DEFAULT_DEPTH_MODELS["moge"], DEFAULT_DEPTH_MODELS["transformers"]
H, W = 48, 64  # not square: a swapped width and height shows up in cx, cy and the focal lengths


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-depth")
    build_tiny_moge(root / MOGE_ID)
    build_tiny_depth_anything(root / DA_ID)
    return root


def run_cfg(models_dir, **depth):
    data = copy.deepcopy(SMALL)
    data["models_dir"] = str(models_dir)
    data["stages"]["depth"] = depth
    return build_config(data, "test")


def samples(n: int = 3) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        s = Sample(index=i, shard=0, seed=sample_seed(0, i))
        s.set_array("image", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        out.append(s)
    return out


def stage_for(models_dir, **depth) -> DepthStage:
    stage = DepthStage(run_cfg(models_dir, **depth))
    stage.setup()
    return stage


def intrinsics(camera: dict) -> tuple[float, float, float, float]:
    assert camera["model"] == "pinhole"
    return camera["fx"], camera["fy"], camera["cx"], camera["cy"]


def one_line_error(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# --- MoGe-2's output to datagen's depth and camera ------------------------------------------


def crafted_moge_output() -> dict[str, np.ndarray]:
    """A tilted plane seen through known normalised intrinsics, unprojected by MoGe's own
    utils3d call (what `infer` does with force_projection), with a masked-out corner."""
    rows, cols = np.mgrid[0:H, 0:W]
    depth = (2.0 + 0.02 * cols + 0.01 * rows).astype(np.float32)
    k = np.array([[0.9, 0.0, 0.45], [0.0, 1.2, 0.55], [0.0, 0.0, 1.0]], dtype=np.float32)
    points = utils3d.pt.depth_map_to_point_map(torch.from_numpy(depth), intrinsics=torch.from_numpy(k)).numpy()
    mask = np.ones((H, W), dtype=bool)
    mask[:10, :20] = False
    # As infer() returns them: depth and points are inf where the mask is False.
    return {
        "depth": np.where(mask, depth, np.inf).astype(np.float32),
        "points": np.where(mask[..., None], points, np.inf).astype(np.float32),
        "intrinsics": k,
        "mask": mask,
    }


def test_moge_conversion_scales_normalised_intrinsics_by_width_and_height():
    depth, camera = depth_and_camera(crafted_moge_output())
    assert intrinsics(camera) == pytest.approx((0.9 * W, 1.2 * H, 0.45 * W, 0.55 * H))
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    assert np.isnan(depth[:10, :20]).all() and np.isfinite(depth).sum() == H * W - 200


def test_moge_conversion_round_trips_moge_points_through_datagen_geometry():
    out = crafted_moge_output()
    depth, camera = depth_and_camera(out)
    points = unproject_pixels(depth, np.ones((H, W), dtype=bool), camera)
    np.testing.assert_allclose(points, out["points"][out["mask"]], rtol=1e-5, atol=1e-5)


def test_moge_conversion_marks_non_positive_depth_unknown_even_inside_the_mask():
    out = crafted_moge_output()
    out["depth"][20, 30] = -1.0
    out["depth"][21, 30] = np.nan
    depth, _ = depth_and_camera(out)
    assert np.isnan(depth[20:22, 30]).all() and np.isfinite(depth[22, 30])


def test_fov_camera():
    f = W / (2 * math.tan(math.radians(30)))
    assert intrinsics(fov_camera(W, H, 60.0)) == pytest.approx((f, f, 32.0, 24.0))
    assert fov_camera(W, H, 90.0)["fx"] == pytest.approx(W / 2)


def test_unusable_cameras():
    good = fov_camera(W, H, 60.0)
    assert camera_is_usable(good)
    assert not camera_is_usable({**good, "fx": -good["fx"], "fy": -good["fy"]})  # a mirrored fit
    assert not camera_is_usable({**good, "cx": math.inf})


# --- the stage on tiny models --------------------------------------------------------------


def assert_depth_and_camera(s: Sample, model_id: str) -> None:
    depth = s.arrays["depth"]
    assert depth.shape == (H, W) and depth.dtype == np.float32
    assert not np.isinf(depth).any() and np.isfinite(depth).any()
    assert (depth[np.isfinite(depth)] > 0).all()
    cam = s.meta["camera"]
    assert set(cam) == {"model", "fx", "fy", "cx", "cy"} and cam["model"] == "pinhole"
    assert all(isinstance(cam[k], float) for k in ("fx", "fy", "cx", "cy"))
    assert s.meta["depth"] == {"units": "m", "source": model_id}


def test_tiny_moge2_through_the_stage(models):
    stage = stage_for(models, backend="moge", fov_x_deg=60.0, resolution_level=0)
    batch = stage.process_batch(samples())
    for s in batch:
        assert isinstance(s, Sample)
        assert_depth_and_camera(s, MOGE_ID)
        # With the field of view given, MoGe's own focal length equals the fov formula's.
        assert intrinsics(s.meta["camera"]) == pytest.approx(intrinsics(fov_camera(W, H, 60.0)), rel=1e-5)
    # One forward for the batch gives what one image at a time does.
    for s, alone in zip(batch, samples(), strict=True):
        (single,) = stage.process_batch([alone])
        np.testing.assert_allclose(single.arrays["depth"], s.arrays["depth"], rtol=1e-4, equal_nan=True)
    settings = stage.generation_settings()
    assert settings == {
        "backend": "moge", "model": MOGE_ID, "revision": None, "dtype": "bfloat16",
        "precision": "float32", "resolution_level": 0, "fov_x_deg": 60.0,
    }  # fmt: skip


def test_tiny_moge2_estimating_the_camera_keeps_or_rejects_each_sample(models):
    stage = stage_for(models, backend="moge")
    for r in stage.process_batch(samples()):
        if isinstance(r, Rejected):
            assert (r.stage, r.reason) == ("depth", "depth_unusable_camera")
        else:
            assert_depth_and_camera(r, MOGE_ID)
            assert camera_is_usable(r.meta["camera"])


def test_tiny_depth_anything_through_the_stage(models):
    stage = stage_for(models, backend="transformers")  # the default dtype, bfloat16, on the CPU
    assert type(stage.model.model).__name__ == "DepthAnythingForDepthEstimation"
    batch = stage.process_batch(samples())
    for s in batch:
        assert_depth_and_camera(s, DA_ID)
        assert intrinsics(s.meta["camera"]) == pytest.approx(intrinsics(fov_camera(W, H, 60.0)))
        assert np.nanstd(s.arrays["depth"]) > 0
    assert stage.generation_settings()["fov_x_deg"] == 60.0
    narrow = stage_for(models, backend="transformers", fov_x_deg=40.0)
    (s,) = narrow.process_batch(samples(1))
    assert s.meta["camera"]["fx"] == pytest.approx(W / (2 * math.tan(math.radians(20))))


# --- refusals, each in one line ------------------------------------------------------------


def moge1_config() -> dict:
    """MoGe-1's model_config as its own class defines it (v1.MoGeModel's keyword defaults)."""
    from moge.model.v1 import MoGeModel as MoGe1

    params = inspect.signature(MoGe1.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def without(config: dict, key: str) -> dict:
    return {k: v for k, v in config.items() if k != key}


def tiny_weights_missing_the_mask_head() -> dict:
    net = import_moge()(**tiny_moge2_config())
    return {k: v for k, v in net.state_dict().items() if not k.startswith("mask_head.")}


@pytest.mark.parametrize(
    "content, expected",
    [
        (lambda: {"model_config": moge1_config(), "model": {}}, "MoGe-1"),
        (lambda: {"encoder.weight": torch.zeros(2)}, "not a MoGe checkpoint"),
        (lambda: b"not a checkpoint at all", "not a MoGe checkpoint (torch.load"),
        (lambda: {"model_config": without(tiny_moge2_config(), "scale_head"), "model": {}}, "without scale_head"),
        (lambda: {"model_config": tiny_moge2_config(), "model": tiny_weights_missing_the_mask_head()}, "lacks"),
    ],
    ids=["moge1", "state-dict-only", "not-torch", "no-scale-head", "weights-missing"],
)
def test_a_checkpoint_that_is_not_moge2_is_refused_in_one_line(tmp_path, content, expected):
    made = content()
    path = tmp_path / MOGE_ID / MOGE_FILE
    path.parent.mkdir(parents=True)
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        torch.save(made, path)
    with pytest.raises(UserError) as e:
        stage_for(tmp_path, backend="moge")
    msg = one_line_error(e)
    assert msg.startswith(f"stages.depth.model {MOGE_ID!r}") and expected in msg


def test_a_directory_without_model_pt_is_refused_in_one_line(models):
    with pytest.raises(UserError) as e:
        stage_for(models, backend="moge", model=str(models / DA_ID))
    assert "model.pt" in one_line_error(e)


def test_a_relative_depth_model_is_refused_in_one_line(models, tmp_path):
    relative = tmp_path / "relative-da"
    shutil.copytree(models / DA_ID, relative)
    config = json.loads((relative / "config.json").read_text())
    config["depth_estimation_type"] = "relative"
    (relative / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as e:
        stage_for(models, backend="transformers", model=str(relative))
    msg = one_line_error(e)
    assert msg.startswith("stages.depth.model") and "relative" in msg and "metric" in msg


def test_missing_moge_extra_names_it_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "moge.model.v2", None)  # as if dlr-moge were not installed
    with pytest.raises(BackendUnavailable) as e:
        import_moge()
    assert "pip install 'datagen[moge]'" in one_line_error(e)


def test_offline_preflight_looks_for_the_file_the_loader_reads():
    assert MODEL_KINDS["moge"][2] == MOGE_FILE
