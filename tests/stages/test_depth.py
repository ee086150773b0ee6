import numpy as np


def test_depth_is_metric_and_camera_filled(small_cfg, through):
    for s in through("depth"):
        np.testing.assert_array_equal(s.arrays["depth"], s.arrays["truth_depth"])
        cam = s.meta["camera"]
        assert cam["model"] == "pinhole" and cam["fx"] > 0 and cam["cx"] == small_cfg.run.width / 2
        assert s.meta["depth"] == {"units": "m", "source": "procedural"}


def test_noise_is_seeded(small_cfg, through):
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.depth.noise_std = 0.01
    a = through("depth", cfg=cfg)
    b = through("depth", cfg=cfg.model_copy(deep=True))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.arrays["depth"], y.arrays["depth"])
        assert not np.array_equal(x.arrays["depth"], x.arrays["truth_depth"])
