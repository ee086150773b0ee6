import numpy as np

from datagen.recipe.geometry import box_volume_iou, center_error_frac
from datagen.store.inflight import Rejected, Sample
from datagen.pipeline.preflight import build_stage


def test_boxes_against_procedural_truth(small_cfg, through):
    ious, errs = [], []
    for s in through("boxes", n=8):
        for subj in s.subjects:
            box, truth = subj["box_3d"], subj["truth_box_3d"]
            assert np.linalg.det(np.array(box["rotation"])) > 0.99
            ious.append(box_volume_iou(box, truth, samples=4000))
            errs.append(center_error_frac(box, truth))
    # Only the visible surface is seen, so the fit is smaller than the whole object; its
    # centre still lies well inside the true box. (bench/e2e.py reports the full figures.)
    assert np.median(errs) < 0.2
    assert np.median(ious) > 0.2


def test_degenerate_subjects_are_dropped_with_a_reason(small_cfg, through):
    samples = through("depth", n=2)
    s = samples[0]
    first = s.subjects[0]["caption"]
    depth = s.arrays["depth"].copy()
    depth[s.arrays["masks"][0]] = np.nan  # the first subject has no valid depth at all
    s.set_array("depth", depth)
    (out,) = build_stage("boxes", small_cfg).process_batch([s])
    dropped = out.meta["rejected_subjects"] if isinstance(out, Sample) else None
    if isinstance(out, Rejected):
        assert out.reason == "too_few_subjects"
    else:
        mine = [d for d in dropped if d["caption"] == first]
        assert mine == [{"name": mine[0]["name"], "caption": first, "stage": "boxes", "reason": "box3d_no_valid_depth"}]
