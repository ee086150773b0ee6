"""The final shards are readable as they are: plain `webdataset` and `datasets`' webdataset
builder load every sample unchanged, with no datagen code (only tarfile, numpy, PIL and yaml
to check them), and row counts equal to the shards' stats.

What a reader has to know, shown here:
- Samples have different numbers of subjects, so their member sets differ (mask_00..mask_NN).
  `datasets.load_dataset("webdataset", data_files=...)` infers features from the first 5
  examples of the first shard and refuses differing member sets, so pass `features=`
  declaring every member up to `filters.max_subjects` of RUN/run.yaml (`sigma_set_features`
  below). It drops members that `features` does not declare, without a word.
- `json` needs `datasets.Json(decode=False)`, read with `json.loads(row["json"])`: the builder
  decodes the member into a dict before the features apply, so `Value("string")` cannot hold
  it, and `Json()`'s own decoding (pandas' ujson, not correctly rounded) turns -0.292644 into
  -0.29264399999999996. The text it stores is exact for sigma-set's 6-decimal numbers (ujson
  writes up to 10 decimals). `depth.npy` needs an `Array2D((height, width), "float32")`, each
  png an `Image()`.
- `webdataset`'s `.decode("pil")` converts every image to one mode (RGB: masks lose mode L and
  crops their alpha); decode PNGs with PIL as stored (`png_as_stored`) to keep each mode.
- Both loaders decode `.npy` with `allow_pickle=False`: a pickled object array is refused.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import webdataset as wds
import yaml
from PIL import Image


def _urls(run_dir: Path) -> list[str]:
    return [str(p) for p in sorted((run_dir / "final").glob("shard-*.tar"))]


def _written(run_dir: Path) -> int:
    stats = [json.loads(p.read_text()) for p in sorted((run_dir / "final").glob("shard-*.stats.json"))]
    return sum(int(s["samples_written"]) for s in stats)


def _members(run_dir: Path) -> dict[str, dict[str, bytes]]:
    """key -> field -> bytes, read with plain tarfile: the reference both loaders must match."""
    out: dict[str, dict[str, bytes]] = {}
    for url in _urls(run_dir):
        with tarfile.open(url) as tar:
            for info in tar:
                key, field = info.name.split(".", 1)
                out.setdefault(key, {})[field] = tar.extractfile(info).read()
    return out


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def png_as_stored(key: str, data: bytes):
    """A webdataset decoder that opens each PNG in its own mode (L masks, RGBA crops, RGB images)."""
    return _png(data) if key.endswith(".png") else None


def sigma_set_features(max_subjects: int, height: int, width: int):
    """The features for `load_dataset("webdataset", ...)` of sigma-set/1 shards."""
    from datasets import Array2D, Features, Image, Json, Value

    fields = {"__key__": Value("string"), "__url__": Value("string"), "png": Image(), "json": Json(decode=False)}
    fields["depth.npy"] = Array2D(shape=(height, width), dtype="float32")
    for i in range(max_subjects):
        for kind in ("mask", "id", "crop"):
            fields[f"{kind}_{i:02d}.png"] = Image()
    return Features(fields)


def _run_yaml(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "run.yaml").read_text())


def _features_for(run_dir: Path, max_subjects: int | None = None):
    cfg = _run_yaml(run_dir)
    return sigma_set_features(max_subjects or cfg["filters"]["max_subjects"], cfg["run"]["height"], cfg["run"]["width"])


def _load(run_dir: Path, tmp_path: Path, features=None):
    return datasets.load_dataset(
        "webdataset", data_files=_urls(run_dir), split="train", features=features, cache_dir=str(tmp_path / "cache")
    )


# ---------------------------------------------------------------- webdataset


def test_webdataset_reads_every_member_byte_for_byte(finished_run):
    reference = _members(finished_run)
    samples = list(wds.WebDataset(_urls(finished_run), shardshuffle=False))
    assert len(samples) == len(reference) == _written(finished_run) > 0
    assert [s["__key__"] for s in samples] == sorted(reference)
    subject_counts = set()
    for s in samples:
        fields = {k: v for k, v in s.items() if not k.startswith("__")}
        assert fields == reference[s["__key__"]]
        n = len(json.loads(fields["json"])["subjects"])
        subject_counts.add(n)
        assert {f"mask_{i:02d}.png" for i in range(n)} == {f for f in fields if f.startswith("mask_")}
    assert len(subject_counts) > 1, "the fixture's samples differ in subject count, the case that matters"


def test_webdataset_decodes_each_field_as_stored(finished_run):
    reference = _members(finished_run)
    decoded = list(wds.WebDataset(_urls(finished_run), shardshuffle=False).decode(png_as_stored))
    assert len(decoded) == _written(finished_run)
    for s in decoded:
        ref = reference[s["__key__"]]
        assert s["json"] == json.loads(ref["json"])
        depth = s["depth.npy"]
        assert depth.dtype == np.float32
        np.testing.assert_array_equal(depth, _npy(ref["depth.npy"]))
        assert s["png"].mode == "RGB" and s["mask_00.png"].mode == "L" and s["crop_00.png"].mode == "RGBA"
        for field in (f for f in ref if f.endswith(".png")):
            np.testing.assert_array_equal(np.asarray(s[field]), np.asarray(_png(ref[field])))


def test_npy_decoders_never_unpickle():
    from datasets.packaged_modules.webdataset.webdataset import DECODERS
    from webdataset.autodecode import decoders

    buf = io.BytesIO()
    np.save(buf, np.array([{"pickled": True}], dtype=object), allow_pickle=True)
    for decode in (DECODERS["npy"], decoders["npy"]):
        with pytest.raises(ValueError, match="allow_pickle=False"):
            decode(buf.getvalue())


# ---------------------------------------------------------------- datasets


def test_datasets_cannot_infer_features_from_mixed_subject_counts(finished_run, tmp_path):
    """Pinned so that the advice (pass features=) is revisited if datasets ever infers them."""
    with pytest.raises(ValueError, match="don't share the same prefix or the same types"):
        _load(finished_run, tmp_path)


def test_datasets_loads_every_sample_with_declared_features(finished_run, tmp_path):
    reference = _members(finished_run)
    ds = _load(finished_run, tmp_path, _features_for(finished_run))
    assert ds.num_rows == _written(finished_run)
    assert ds["__key__"] == sorted(reference)
    cfg = _run_yaml(finished_run)
    for row in ds:
        ref = reference[row["__key__"]]
        meta = json.loads(row["json"])
        assert meta == json.loads(ref["json"])
        n = len(meta["subjects"])
        for i in range(cfg["filters"]["max_subjects"]):
            for kind in ("mask", "id", "crop"):
                field = f"{kind}_{i:02d}.png"
                assert (row[field] is not None) == (field in ref), field  # nothing dropped, nothing invented
        assert sum(row[f"mask_{i:02d}.png"] is not None for i in range(cfg["filters"]["max_subjects"])) == n
        assert row["mask_00.png"].mode == "L" and row["crop_00.png"].mode == "RGBA"
        for field in (f for f in ref if f.endswith(".png")):
            np.testing.assert_array_equal(np.asarray(row[field]), np.asarray(_png(ref[field])))
        np.testing.assert_array_equal(np.asarray(row["depth.npy"], dtype=np.float32), _npy(ref["depth.npy"]))


def test_datasets_drops_undeclared_members_silently(finished_run, tmp_path):
    """Why the features must reach filters.max_subjects: with too few, members vanish unreported."""
    ds = _load(finished_run, tmp_path, _features_for(finished_run, max_subjects=3))
    assert ds.num_rows == _written(finished_run)
    row = ds[0]
    assert len(json.loads(row["json"])["subjects"]) > 3 and "mask_03.png" not in row
