import json
import copy

from datagen.final.writer import final_members
from datagen.store.inflight import Rejected
from datagen.schema import SampleMeta
from datagen.pipeline.preflight import build_stage
from datagen.config import FilterRules
from datagen.recipe.filters import box3d_reason


def test_kept_samples_meet_the_format(small_cfg, through):
    kept = through("filter")
    assert kept
    for s in kept:
        members = dict(final_members(s, small_cfg))
        assert sorted(members) == [f"{s.key}.{f}" for f in ("depth.png", "identities.png", "instances.png", "json", "png")]
        meta = json.loads(members[f"{s.key}.json"])
        SampleMeta.model_validate(meta)
        assert meta["schema"] == "sigma-set/2" and meta["source"]["id"] == s.key
        assert [x["intensity"] for x in meta["subjects"]] == [10 * (i + 1) for i in range(len(s.subjects))]
        assert all(x["identity"]["source"] == "repose" for x in meta["subjects"])
        assert "sid" not in meta["subjects"][0] and meta["truth"]["subjects"][0]["name"] == s.subjects[0]["name"]


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
