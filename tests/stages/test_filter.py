import copy

from datagen.final.writer import final_members, final_meta
from datagen.store.inflight import Rejected
from datagen.schema import SampleMeta
from datagen.pipeline.preflight import build_stage
from datagen.config import FilterRules
from datagen.recipe.filters import box3d_reason


def test_kept_samples_meet_the_format(small_cfg, through):
    kept = through("filter")
    assert kept
    for s in kept:
        meta = final_meta(s, small_cfg)
        SampleMeta.model_validate(meta)
        assert [x["intensity"] for x in meta["subjects"]] == [10 * (i + 1) for i in range(len(s.subjects))]
        assert "sid" not in meta["subjects"][0] and meta["truth"]["subjects"][0]["name"] == s.subjects[0]["name"]
        names = [m[0] for m in final_members(s, small_cfg)]
        assert f"{s.key}.json" in names and f"{s.key}.depth.npy" in names and f"{s.key}.mask_00.png" in names


def test_box_far_from_its_mask_is_dropped(small_cfg, through):
    s = copy.deepcopy(through("repose")[0])
    subj = s.subjects[0]
    moved = copy.deepcopy(subj)
    moved["box_3d"]["corners"] = [[x + 50.0, y, z] for x, y, z in subj["box_3d"]["corners"]]
    assert box3d_reason(moved, s.meta["camera"], s.meta["width"], s.meta["height"], FilterRules()) == "box3d_outside_image"
    s.subjects[0] = moved
    (out,) = build_stage("filter", small_cfg).process_batch([s])
    reasons = [] if isinstance(out, Rejected) else [r["reason"] for r in out.meta["rejected_subjects"]]
    assert isinstance(out, Rejected) or "box3d_outside_image" in reasons


def test_too_few_subjects_rejects_the_sample(small_cfg, through):
    s = copy.deepcopy(through("repose")[0])
    cfg = small_cfg.model_copy(deep=True)
    cfg.filters.min_subjects = 10
    cfg.filters.max_subjects = 10
    if len(s.subjects) < 10:
        (out,) = build_stage("filter", cfg).process_batch([s])
        assert isinstance(out, Rejected) and out.reason == "too_few_subjects"
