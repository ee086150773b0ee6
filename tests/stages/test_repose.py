import numpy as np


def test_identity_images_one_per_subject_same_size(small_cfg, through):
    size = small_cfg.stages.repose.identity_size
    for s in through("repose"):
        ids = s.arrays["identity"]
        assert ids.shape == (len(s.subjects), size, size, 3) and ids.dtype == np.uint8
        assert all(x["identity"] == {"width": size, "height": size} for x in s.subjects)
        # Re-posed, not a copy of the target's pixels: differs from every other identity.
        assert len({ids[i].tobytes() for i in range(len(ids))}) == len(ids)
