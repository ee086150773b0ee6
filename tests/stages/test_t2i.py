import numpy as np

from datagen.store.inflight import Rejected, Sample
from datagen.pipeline.preflight import build_stage


def test_render_matches_the_scene(small_cfg, through):
    for s in through("t2i"):
        img = s.arrays["image"]
        assert img.shape == (small_cfg.run.height, small_cfg.run.width, 3) and img.dtype == np.uint8
        inst = s.arrays["truth_instance"]
        depth = s.arrays["truth_depth"]
        assert depth.dtype == np.float32
        assert set(np.unique(inst)) <= set(range(len(s.subjects) + 1))
        assert np.all(np.isfinite(depth[inst > 0]))  # every subject pixel has depth
        assert all("truth_box_3d" in x for x in s.subjects)


def test_without_a_scene_the_sample_is_rejected(small_cfg):
    (r,) = build_stage("t2i", small_cfg).process_batch([Sample(index=0, shard=0, seed=0, meta={"subjects": []})])
    assert isinstance(r, Rejected) and r.reason == "no_scene_for_procedural_t2i"
