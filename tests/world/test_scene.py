"""Scene sampling: determinism, JSON round trip, captions, layout and config validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from datagen.world import SHAPES, TEXTURES, WorldConfig, sample_scene, scene_prompt
from datagen.world.meshes import world_box_corners

CFG = WorldConfig()


def _scene(seed: int, n: int = 6, w: int = 160, h: int = 120, cfg: WorldConfig = CFG) -> dict:
    return sample_scene(np.random.default_rng(seed), n, w, h, cfg)


def test_same_seed_same_scene_and_different_seeds_differ():
    assert _scene(3) == _scene(3)
    assert _scene(3) != _scene(4)


def test_scene_is_plain_json():
    scene = _scene(5, n=10)
    assert json.loads(json.dumps(scene)) == scene


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10])
def test_subject_fields_and_unique_captions(n):
    scene = _scene(11 + n, n=n)
    subjects = scene["subjects"]
    assert len(subjects) == n
    assert len({s["caption"] for s in subjects}) == n
    for s in subjects:
        assert s["name"] == s["shape"] and s["shape"] in SHAPES
        words = [s["colour"], TEXTURES[s["texture"]], s["shape"]]
        assert s["caption"].split(" ", 1)[1] == " ".join(w for w in words if w)
        assert s["caption"].split(" ", 1)[0] in ("a", "an")
        assert 0.25 <= s["size"] <= 1.25
        assert s["position"][2] == 0.0


def test_plain_texture_is_omitted_from_caption():
    cfg = WorldConfig(shapes=["mug"], colours=["red"], textures=["plain"])
    assert _scene(0, n=1, cfg=cfg)["subjects"][0]["caption"] == "a red mug"
    cfg = WorldConfig(shapes=["mug"], colours=["orange"], textures=["striped"])
    assert _scene(0, n=1, cfg=cfg)["subjects"][0]["caption"] == "an orange striped mug"


def test_footprints_do_not_overlap():
    for seed in range(10):
        subjects = _scene(seed, n=10)["subjects"]
        for i, a in enumerate(subjects):
            for b in subjects[i + 1:]:
                dist = np.hypot(a["position"][0] - b["position"][0], a["position"][1] - b["position"][1])
                assert dist >= a["footprint_radius"] + b["footprint_radius"]


def test_subjects_in_front_and_inside_the_frame():
    for seed in range(10):
        scene = _scene(seed, n=8, w=200, h=150)
        cam = scene["camera"]
        pose = np.asarray(cam["cam_to_world"])
        for s in scene["subjects"]:
            q = (world_box_corners(s) - pose[:3, 3]) @ pose[:3, :3]
            assert (q[:, 2] > 0).all()
            u = cam["fx"] * q[:, 0] / q[:, 2] + cam["cx"]
            v = cam["fy"] * q[:, 1] / q[:, 2] + cam["cy"]
            assert (u >= 0).all() and (u <= scene["width"]).all()
            assert (v >= 0).all() and (v <= scene["height"]).all()


def test_camera_pose_is_a_proper_rotation():
    pose = np.asarray(_scene(2)["camera"]["cam_to_world"])
    rot = pose[:3, :3]
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-9)
    assert np.isclose(np.linalg.det(rot), 1.0)
    assert pose[2, 3] > 0  # above the ground
    assert rot[2, 2] < 0  # looking down


def test_scene_prompt():
    scene = _scene(8, n=3)
    prompt = scene_prompt(scene)
    caps = [s["caption"] for s in scene["subjects"]]
    bg = scene["background"]["caption"]
    assert prompt["background"] == bg
    assert prompt["full"] == f"A photo of {caps[0]}, {caps[1]} and {caps[2]} {scene['background']['preposition']} {bg}."
    one = _scene(8, n=1)
    assert scene_prompt(one)["full"].startswith(f"A photo of {one['subjects'][0]['caption']} ")


def test_config_rejects_unknown_names():
    with pytest.raises(ValidationError, match="spaceship"):
        WorldConfig(shapes=["mug", "spaceship"])
    with pytest.raises(ValidationError, match="ultraviolet"):
        WorldConfig(colours=["ultraviolet"])
    with pytest.raises(ValidationError, match="furry"):
        WorldConfig(textures=["furry"])
    with pytest.raises(ValidationError, match="the moon"):
        WorldConfig(backgrounds=["the moon"])
    with pytest.raises(ValidationError):
        WorldConfig(bogus_field=1)


def test_config_accepts_background_ids_and_captions():
    cfg = WorldConfig(backgrounds=["a sandy beach"])
    assert _scene(0, cfg=cfg)["background"]["id"] == "beach"
    cfg = WorldConfig(backgrounds=["meadow"])
    assert _scene(0, cfg=cfg)["background"]["caption"] == "a grassy meadow"


def test_too_many_subjects_for_the_vocabulary():
    cfg = WorldConfig(shapes=["box"], colours=["red"], textures=["plain", "striped"])
    with pytest.raises(ValueError, match="distinct"):
        _scene(0, n=3, cfg=cfg)


def test_stacked_subjects_stand_on_a_flat_top_and_default_scenes_have_none():
    from datagen.world.meshes import unit_arrays, world_arrays
    from datagen.world.vocab import SUPPORT_TOPS

    assert not any("on" in s for seed in range(10) for s in _scene(seed, n=8)["subjects"])
    stacked = 0
    for seed in range(20):
        subjects = _scene(seed, n=8, cfg=WorldConfig(stack_share=0.5))["subjects"]
        holders = [s["on"] for s in subjects if "on" in s]
        assert len(holders) == len(set(holders)), "a top holds one subject"
        for s in subjects:
            if "on" not in s:
                assert s["position"][2] == 0.0
                continue
            stacked += 1
            holder = subjects[s["on"]]
            assert holder["shape"] in SUPPORT_TOPS and "on" not in holder
            top = float(unit_arrays(holder["shape"])[0][:, 2].max()) * holder["size"]
            # Standing exactly on the top, its whole footprint within the top's narrower half-side.
            assert s["position"][2] == pytest.approx(top)
            assert world_arrays(s)[0][:, 2].min() == pytest.approx(top, abs=1e-9)
            reach = np.hypot(s["position"][0] - holder["position"][0], s["position"][1] - holder["position"][1])
            assert reach + s["footprint_radius"] <= SUPPORT_TOPS[holder["shape"]] * holder["size"] * holder["aspect"] + 1e-9
    assert stacked >= 10
