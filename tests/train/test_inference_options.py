"""The paper's inference options for `datagen sample` / `datagen eval`: full-scene depth (Table 3),
mixed granularity (appendix A.5) and the two prompt templates, on hand-made layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from datagen.errors import UserError
from datagen.recipe.conditioning import Layout, box2d_region, control_image, dilate_mask, encode_depth, render_box3d, structure
from datagen.recipe.geometry import make_box3d
from datagen.recipe.mixed_granularity import (
    SINGLE_MODE,
    cycle_granularities,
    layout_control,
    mixed_control_image,
    mixed_structure,
)
from datagen.train.sampling import PAPER_TEMPLATES, conditions, prompt_text, read_layout, run_sample
from helpers import run_cli

# Non-square on purpose: 128 wide, 96 high, principal point at the centre.
W, H = 128, 96
CAM = {"model": "pinhole", "fx": 100.0, "fy": 100.0, "cx": 64.0, "cy": 48.0}
PROMPT = {"full": "a red mug and a cat on a desk", "background": "a desk"}


def _rect(x0, y0, x1, y1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _layout() -> Layout:
    """Three disjoint subjects (masks at z = 2 and 4, a box near the top right) on a z = 10
    background with a hole of no depth (NaN) and a pixel of invalid depth (-1)."""
    masks = np.stack([_rect(10, 10, 30, 25), _rect(50, 40, 90, 70), _rect(98, 20, 110, 34)])
    depth = np.full((H, W), 10.0, dtype=np.float32)
    depth[masks[0]] = 2.0
    depth[masks[1]] = 4.0
    depth[masks[2]] = 6.0
    depth[80:90, 0:10] = np.nan
    depth[0, W - 1] = -1.0
    subjects = [
        {"box_2d": [10, 10, 30, 25], "box_3d": make_box3d([-0.9, -0.6, 2.5], [0.4, 0.3, 1.0], np.eye(3))},
        {"box_2d": [50, 40, 90, 70], "box_3d": make_box3d([0.4, 0.5, 4.5], [1.8, 1.35, 1.0], np.eye(3))},
        {"box_2d": [98, 20, 110, 34], "box_3d": make_box3d([2.4, -1.2, 6.5], [0.7, 0.8, 1.0], np.eye(3))},
    ]
    return Layout(W, H, subjects, camera=CAM, masks=masks, depth=depth)


def _decoded(layout: Layout, **drop) -> dict:
    meta = {"width": W, "height": H, "prompt": PROMPT, "subjects": layout.subjects, "camera": layout.camera}
    ids = [np.full((20, 20, 3), 40 * (i + 1), dtype=np.uint8) for i in range(len(layout.subjects))]
    decoded = {"json": meta, "masks": layout.masks, "depth": layout.depth, "identities": ids}
    for key in drop:
        (meta if key == "camera" else decoded)[key] = None
    return decoded


# ---------------------------------------------------------------- full-scene depth


def test_full_depth_encodes_the_whole_images_depth_with_mask_routing():
    layout = _layout()
    control = control_image(layout, "full_depth", dilate_px=2)
    i_t = control[..., 2]
    np.testing.assert_array_equal(i_t, encode_depth(layout.depth, np.ones((H, W), dtype=bool)))
    np.testing.assert_array_equal(control[..., :2], control_image(layout, "masks", dilate_px=2)[..., :2])
    outside = ~layout.masks.any(0)
    valid = np.isfinite(layout.depth) & (layout.depth > 0)
    np.testing.assert_array_equal(i_t[outside] > 0, valid[outside])  # background depth is there too
    assert np.all(i_t[outside & valid] == 1)  # z = 10 is the farthest
    assert np.all(i_t[layout.masks[0]] == 255) and i_t[80:90, 0:10].max() == 0 and i_t[0, W - 1] == 0
    # s = 1/z normalised over the image: 1/4 between 1/10 and 1/2 -> 1 + round(254 * 0.375)
    assert np.all(i_t[layout.masks[1]] == 1 + round(254 * (0.25 - 0.1) / (0.5 - 0.1)))
    # the masks mode's I_T normalises over the subjects only: the same subject gets another code
    assert control_image(layout, "masks")[..., 2][layout.masks[1]].max() != i_t[layout.masks[1]].max()


def test_full_depth_needs_masks_and_depth():
    layout = _layout()
    with pytest.raises(ValueError, match="'full_depth' needs the sample's masks and depth"):
        structure(Layout(W, H, layout.subjects, camera=CAM, masks=layout.masks), "full_depth")
    for drop, lacks in (("depth", "depth"), ("masks", "masks")):
        with pytest.raises(UserError, match=f"^--mode full_depth: the layout lacks {lacks}$"):
            conditions(_decoded(layout, **{drop: None}), "full_depth", 64, 16)


# ---------------------------------------------------------------- mixed granularity


@pytest.mark.parametrize("dilate_px, aspect", [(0, None), (2, 1.3)])
@pytest.mark.parametrize("granularity", ["mask", "box2d", "box3d"])
def test_one_granularity_for_all_is_exactly_that_single_mode(granularity, dilate_px, aspect):
    layout = _layout()
    mode = SINGLE_MODE[granularity]
    grans = [granularity] * 3
    regions, i_t = mixed_structure(layout, grans, dilate_px, aspect)
    want_regions, want_i_t = structure(layout, mode, dilate_px, aspect)
    for got, want in zip(regions, want_regions):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(i_t, want_i_t)
    single = control_image(layout, mode, dilate_px, aspect)
    np.testing.assert_array_equal(mixed_control_image(layout, grans, dilate_px, aspect), single)
    np.testing.assert_array_equal(layout_control(layout, "mixed", grans, dilate_px, aspect), single)
    np.testing.assert_array_equal(layout_control(layout, mode, None, dilate_px, aspect), single)
    with pytest.raises(ValueError, match="go with mode 'mixed'"):
        layout_control(layout, mode, grans)


def test_mask_and_box2d_subjects_box2d_carries_no_structure():
    layout = Layout(W, H, _layout().subjects[:2], camera=CAM, masks=_layout().masks[:2], depth=_layout().depth)
    control = mixed_control_image(layout, ["mask", "box2d"])
    box = box2d_region(layout.subjects[1]["box_2d"], W, H)
    np.testing.assert_array_equal(control[..., 0], np.where(box, 20, np.where(layout.masks[0], 10, 0)))
    assert not control[..., 2][box].any()  # the box2d subject: routing only
    # the mask subject alone carries depth: one depth over it, all "near"
    np.testing.assert_array_equal(control[..., 2], np.where(layout.masks[0], 255, 0))


def test_mask_box2d_box3d_share_one_depth_scale():
    layout = _layout()
    regions, i_t = mixed_structure(layout, ["mask", "box2d", "box3d"], dilate_px=1)
    box_z = render_box3d(layout.subjects[2]["box_3d"], CAM, W, H, dilate_px=1)
    np.testing.assert_array_equal(regions[0], dilate_mask(layout.masks[0], 1))
    np.testing.assert_array_equal(regions[1], box2d_region(layout.subjects[1]["box_2d"], W, H, 1))
    np.testing.assert_array_equal(regions[2], np.isfinite(box_z))
    depth = np.where(layout.masks[0], layout.depth, box_z)
    np.testing.assert_array_equal(i_t, encode_depth(depth, layout.masks[0] | np.isfinite(box_z)))
    assert np.all(i_t[layout.masks[0]] == 255)  # z = 2, nearer than the box (z >= 6)
    assert i_t[regions[2]].min() == 1 and not i_t[regions[1] & ~regions[2]].any()
    assert not i_t[~(layout.masks[0] | regions[2])].any()  # dilated ring and background: 0


def test_overlapping_mask_and_box3d_nearer_surface_wins():
    layout = _layout()
    # a 3D box (z 2..3) in front of part of subject 1's mask (z 4)
    near = dict(layout.subjects[0], box_3d=make_box3d([0.4, 0.5, 2.5], [0.6, 0.6, 1.0], np.eye(3)))
    mixed = Layout(W, H, [near, layout.subjects[1]], camera=CAM, masks=layout.masks[[0, 1]], depth=layout.depth)
    _, i_t = mixed_structure(mixed, ["box3d", "mask"])
    box_z = render_box3d(near["box_3d"], CAM, W, H)
    hit = np.isfinite(box_z)
    assert (hit & layout.masks[1]).any() and (layout.masks[1] & ~hit).any()
    depth = np.minimum(box_z, np.where(layout.masks[1], layout.depth, np.inf))
    np.testing.assert_array_equal(i_t, encode_depth(depth, hit | layout.masks[1]))
    assert i_t[hit].max() == 255 and i_t[hit].min() > 1 and np.all(i_t[layout.masks[1] & ~hit] == 1)


def test_cycle_granularities_is_the_default():
    assert cycle_granularities(5) == ["mask", "box2d", "box3d", "mask", "box2d"]
    assert cycle_granularities(0) == []
    layout = _layout()
    want = mixed_control_image(layout, ["mask", "box2d", "box3d"])
    np.testing.assert_array_equal(mixed_control_image(layout), want)
    decoded = _decoded(layout)
    control, ids = conditions(decoded, "mixed", W, 16)
    assert control.shape == (W, W, 3) and ids.shape == (48, 16, 3)
    np.testing.assert_array_equal(control, conditions(decoded, "mixed", W, 16, ["mask", "box2d", "box3d"])[0])
    np.testing.assert_array_equal(control, np.asarray(Image.fromarray(want).resize((W, W), Image.NEAREST)))


@pytest.mark.parametrize("mode", ["masks", "boxes3d", "boxes2d", "full_depth"])
def test_conditions_single_modes_match_control_image(mode):
    layout = _layout()
    control, _ = conditions(_decoded(layout), mode, 64, 16)
    want = np.asarray(Image.fromarray(control_image(layout, mode)).resize((64, 64), Image.NEAREST))
    np.testing.assert_array_equal(control, want)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "mode, grans, needle",
    [
        ("mixed", ["mask", "box2d"], "^--granularity mask,box2d: 2 granularities for 3 subjects"),
        ("mixed", ["mask", "sphere", "box3d"], "^--granularity mask,sphere,box3d: 'sphere' is not a granularity"),
        ("masks", ["mask", "mask", "mask"], "^--granularity: goes with --mode mixed, not --mode masks"),
        ("boxes", None, "^--mode 'boxes': one of masks, boxes3d, boxes2d, full_depth, mixed"),
    ],
)
def test_bad_granularity_or_mode_is_one_line(mode, grans, needle):
    with pytest.raises(UserError, match=needle) as err:
        conditions(_decoded(_layout()), mode, 64, 16, grans)
    assert "\n" not in str(err.value)


def test_mixed_asks_only_for_what_its_granularities_need():
    layout = _layout()
    no_camera = _decoded(layout, camera=None)
    with pytest.raises(UserError, match=r"^--mode mixed \(--granularity mask,box2d,box3d\): the layout lacks camera$"):
        conditions(no_camera, "mixed", 64, 16)
    conditions(no_camera, "mixed", 64, 16, ["mask", "box2d", "mask"])  # no box3d: no camera needed
    no_depth = _decoded(layout, depth=None)
    with pytest.raises(UserError, match="lacks depth$"):
        conditions(no_depth, "mixed", 64, 16, ["box3d", "box2d", "mask"])
    conditions(no_depth, "mixed", 64, 16, ["box3d", "box2d", "box2d"])
    no_box = _decoded(layout)
    no_box["json"]["subjects"] = [layout.subjects[0], {"box_2d": [50, 40, 90, 70]}, layout.subjects[2]]
    with pytest.raises(UserError, match=r"lacks box_3d for subjects\[1\]$"):
        conditions(no_box, "mixed", 64, 16, ["box3d", "box3d", "box3d"])


def test_json_layout_with_masks_for_some_subjects_only(tmp_path):
    """A.5 from a JSON layout: masks only where the user drew them, boxes elsewhere."""
    layout = _layout()
    for i in range(2):
        Image.fromarray(np.full((24, 24, 3), 50 * (i + 1), np.uint8)).save(tmp_path / f"id{i}.png")
    Image.fromarray(layout.masks[0].astype(np.uint8) * 255).save(tmp_path / "m0.png")
    np.save(tmp_path / "depth.npy", layout.depth)
    spec = {
        "width": W, "height": H, "prompt": PROMPT, "camera": CAM, "depth": "depth.npy",
        "subjects": [{"identity": "id0.png", "box_2d": [10, 10, 30, 25], "mask": "m0.png"},
                     {"identity": "id1.png", "box_2d": [50, 40, 90, 70]}],
    }  # fmt: skip
    (tmp_path / "layout.json").write_text(json.dumps(spec))
    decoded = read_layout(tmp_path / "layout.json")
    assert decoded["mask_given"] == [True, False]
    control, _ = conditions(decoded, "mixed", 64, 16, ["mask", "box2d"])
    two = Layout(W, H, spec["subjects"], camera=CAM, masks=layout.masks[:2], depth=layout.depth)
    want = mixed_control_image(two, ["mask", "box2d"])
    np.testing.assert_array_equal(control, np.asarray(Image.fromarray(want).resize((64, 64), Image.NEAREST)))
    for mode, grans in (("masks", None), ("mixed", ["box2d", "mask"]), ("full_depth", None)):
        with pytest.raises(UserError, match=r"lacks mask for subjects\[1\]$"):
            conditions(decoded, mode, 64, 16, grans)


# ---------------------------------------------------------------- prompts


def test_prompt_text_gives_the_two_templates():
    meta = {"prompt": PROMPT}
    assert prompt_text(meta, "background") == "Place these subjects in a desk"
    assert prompt_text(meta, "full") == "Place these subjects to compose: a red mug and a cat on a desk"
    with pytest.raises(UserError, match="^--prompt-template 'bg': one of background, full$"):
        prompt_text(meta, "bg")
    assert PAPER_TEMPLATES["masks"] == PAPER_TEMPLATES["full_depth"] == "background"
    assert {PAPER_TEMPLATES[m] for m in ("boxes2d", "boxes3d", "mixed")} == {"full"}


def test_run_sample_refuses_a_prompt_and_a_template_before_loading_anything(tmp_path):
    common = dict(lora=None, shard=None, key=None, layout=tmp_path / "none.json", mode="masks", out=tmp_path / "x.png",
                  config="train_tiny", overrides=[], seed=0, steps=1, guidance=1.0)  # fmt: skip
    with pytest.raises(UserError, match="^give one of --prompt or --prompt-template$"):
        run_sample(prompt="a cat", prompt_template="full", **common)
    with pytest.raises(UserError, match="^--prompt-template 'short'"):
        run_sample(prompt=None, prompt_template="short", **common)


def test_cli_names_the_granularity_flag(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    spec = {"width": 32, "height": 32, "prompt": "a desk", "subjects": [{"identity": "a.png", "box_2d": [1, 1, 9, 9]}]}
    (tmp_path / "layout.json").write_text(json.dumps(spec))
    done = run_cli("sample", "--layout", str(tmp_path / "layout.json"), "--config", "train_tiny", "--mode", "mixed",
                   "--granularity", "box2d,box2d", "--prompt-template", "background", "--out", str(tmp_path / "x.png"))  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.startswith("datagen: error:")]
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and "--granularity box2d,box2d: 2 granularities for 1 subjects" in errors[0], done.stderr
    assert not (tmp_path / "x.png").exists()
