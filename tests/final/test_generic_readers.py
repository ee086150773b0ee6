"""sigma-set/2 opens in the field's generic readers as it is (FORMAT.md): `datasets`'
webdataset builder with no `features=`, and `webdataset.WebDataset(urls).decode(...)` with a
PNG handler that keeps 16 bits (webdataset's own image specs all convert to 8-bit L/RGB), with
the README's two lines turning `instances.png` and `depth.png` into masks and metres."""

from __future__ import annotations

import numpy as np

from datagen.final.read import iter_final_samples


def masks_from(instances, subjects: list) -> np.ndarray:
    """README: subject i's mask is instances == i + 1."""
    return np.asarray(instances)[None] == np.arange(1, len(subjects) + 1)[:, None, None]


def metres_from(depth_png, depth: dict) -> np.ndarray:
    """README: z = exp(log_min + (v - 1) * (log_max - log_min) / 65534), NaN where v == 0."""
    v = np.asarray(depth_png, dtype=np.float64)
    return np.where(v > 0, np.exp(depth["log_min"] + (v - 1) * (depth["log_max"] - depth["log_min"]) / 65534), np.nan)


def _same_as_datagen(key: str, meta: dict, instances, depth_png, ours: dict) -> None:
    sample = ours[key]
    np.testing.assert_array_equal(masks_from(instances, meta["subjects"]), sample.masks, err_msg=key)
    np.testing.assert_allclose(metres_from(depth_png, meta["depth"]), sample.depth, rtol=1e-6, err_msg=key)


def test_datasets_loads_every_sample_without_features(finished_run):
    import datasets

    urls = sorted(str(p) for p in (finished_run / "final").glob("shard-*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": urls}, split="train")
    ours = {s.key: s for s in iter_final_samples(finished_run)}
    assert len(ds) == len(ours) > 0
    assert set(ds.column_names) >= {"png", "json", "depth.png", "instances.png", "identities.png"}
    for row in ds:
        meta = row["json"]
        assert meta["schema"] == "sigma-set/2" and row["depth.png"].mode == "I;16"
        _same_as_datagen(row["__key__"], meta, row["instances.png"], row["depth.png"], ours)
        np.testing.assert_array_equal(np.asarray(row["png"].convert("RGB")), ours[row["__key__"]].image)


def test_webdataset_decodes_to_the_same_masks_and_depth(finished_run):
    import io

    import webdataset as wds
    from PIL import Image

    as_array = wds.handle_extension("png", lambda data: np.asarray(Image.open(io.BytesIO(data))))  # the README's

    urls = sorted(str(p) for p in (finished_run / "final").glob("shard-*.tar"))
    ours = {s.key: s for s in iter_final_samples(finished_run)}
    seen = 0
    for s in wds.WebDataset(urls, shardshuffle=False).decode(as_array):
        meta = s["json"]
        _same_as_datagen(s["__key__"], meta, s["instances.png"], s["depth.png"], ours)
        n, size = len(meta["subjects"]), meta["subjects"][0]["identity"]
        identities = np.asarray(s["identities.png"]).reshape(n, size["height"], size["width"], 3)
        np.testing.assert_array_equal(identities, ours[s["__key__"]].identities)
        seen += 1
    assert seen == len(ours)
