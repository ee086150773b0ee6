"""The final shards are readable as they are: plain `webdataset` and `datasets`' webdataset
builder load every sample unchanged, with no datagen code (only tarfile, numpy, PIL and yaml
to check them), and row counts equal to the shards' stats. Both versions: the session's run
(`finished_run`, sigma-set/2, as the writer writes now) and the committed sigma-set/1 run
(tests/fixtures/v1_run, as an older datagen wrote it; such runs stay readable).

What a reader has to know, shown here:
- sigma-set/2 samples all have the same five members (image, json, depth.png, instances.png,
  identities.png), so `datasets` infers one schema with no `features=`
  (tests/final/test_generic_readers.py). The rest of this note is about sigma-set/1.
- sigma-set/1 samples have different numbers of subjects, so their member sets differ
  (mask_00..mask_NN). `datasets.load_dataset("webdataset", data_files=...)` infers features
  from the first 5 examples of the first shard and refuses differing member sets, so pass
  `features=` declaring every member up to `filters.max_subjects` of RUN/run.yaml
  (`sigma_set_features` below). It drops members that `features` does not declare, without a
  word.
- `json` needs `datasets.Json(decode=False)`, read with `json.loads(row["json"])`: the builder
  decodes the member into a dict before the features apply, so `Value("string")` cannot hold
  it, and `Json()`'s own decoding (pandas' ujson, not correctly rounded) turns -0.292644 into
  -0.29264399999999996. The text it stores is exact for sigma-set's 6-decimal numbers (ujson
  writes up to 10 decimals). `depth.npy` needs an `Array2D((height, width), "float32")`, each
  png an `Image()`.
- `webdataset`'s `.decode("pil")` converts every image to one mode (RGB: masks lose mode L,
  crops their alpha, /2's 16-bit depth.png its precision); decode PNGs with PIL as stored
  (`png_as_stored`) to keep each mode.
- Both loaders decode `.npy` with `allow_pickle=False`: a pickled object array is refused.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pytest
import webdataset as wds
import yaml
from PIL import Image

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"
V2_MEMBERS = {"json", "depth.png", "instances.png", "identities.png"}  # and one of png, jpg


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory) -> Path:
    """A copy of the committed sigma-set/1 run (the fixture itself is never touched)."""
    return shutil.copytree(FIXTURE, tmp_path_factory.mktemp("v1") / "run")


@pytest.fixture(params=["sigma-set/1", "sigma-set/2"])
def any_run(request) -> tuple[str, Path]:
    """(schema, run): the /1 fixture's copy, or the session's run that the writer made (/2)."""
    run = request.getfixturevalue("v1_run" if request.param == "sigma-set/1" else "finished_run")
    return request.param, run


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
    """A webdataset decoder that opens each PNG in its own mode (L masks and instances, RGBA
    crops, RGB images, I;16 depth)."""
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


def test_webdataset_reads_every_member_byte_for_byte(any_run):
    schema, run = any_run
    reference = _members(run)
    samples = list(wds.WebDataset(_urls(run), shardshuffle=False))
    assert len(samples) == len(reference) == _written(run) > 0
    assert [s["__key__"] for s in samples] == sorted(reference)
    subject_counts = set()
    for s in samples:
        fields = {k: v for k, v in s.items() if not k.startswith("__")}
        assert fields == reference[s["__key__"]]
        meta = json.loads(fields["json"])
        assert meta["schema"] == schema
        n = len(meta["subjects"])
        subject_counts.add(n)
        if schema == "sigma-set/1":  # one mask per subject: member sets differ with the count
            assert {f"mask_{i:02d}.png" for i in range(n)} == {f for f in fields if f.startswith("mask_")}
        else:  # the same five members whatever the count
            images = set(fields) & {"png", "jpg"}
            assert len(images) == 1 and set(fields) == V2_MEMBERS | images, sorted(fields)
    assert len(subject_counts) > 1, "the run's samples differ in subject count, the case that matters"


def test_webdataset_decodes_each_field_as_stored(any_run):
    schema, run = any_run
    reference = _members(run)
    decoded = list(wds.WebDataset(_urls(run), shardshuffle=False).decode(png_as_stored))
    assert len(decoded) == _written(run)
    for s in decoded:
        ref = reference[s["__key__"]]
        assert s["json"] == json.loads(ref["json"])
        assert s["png"].mode == "RGB"
        if schema == "sigma-set/1":
            depth = s["depth.npy"]
            assert depth.dtype == np.float32
            np.testing.assert_array_equal(depth, _npy(ref["depth.npy"]))
            assert s["mask_00.png"].mode == "L" and s["crop_00.png"].mode == "RGBA"
        else:
            assert s["instances.png"].mode == "L" and s["identities.png"].mode == "RGB"
            depth = np.asarray(s["depth.png"])
            assert s["depth.png"].mode == "I;16" and depth.dtype == np.uint16
            assert depth.max() > 255, "all 16 bits kept, not cut to 8"
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


def test_datasets_cannot_infer_features_from_mixed_subject_counts(v1_run, tmp_path):
    """sigma-set/1 only (/2 has one member set: test_generic_readers). Pinned so that the advice
    (pass features=) is revisited if datasets ever infers them."""
    members = _members(v1_run)
    first = [frozenset(members[k]) for k in sorted(members) if k.startswith("000000_")][:5]
    assert len(set(first)) > 1  # the examples datasets infers from have differing member sets
    with pytest.raises(ValueError, match="don't share the same prefix or the same types"):
        _load(v1_run, tmp_path)


def test_datasets_loads_every_sample_with_declared_features(v1_run, tmp_path):
    reference = _members(v1_run)
    ds = _load(v1_run, tmp_path, _features_for(v1_run))
    assert ds.num_rows == _written(v1_run) > 0
    assert ds["__key__"] == sorted(reference)
    cfg = _run_yaml(v1_run)
    for row in ds:
        ref = reference[row["__key__"]]
        meta = json.loads(row["json"])
        assert meta == json.loads(ref["json"]) and meta["schema"] == "sigma-set/1"
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


def test_datasets_drops_undeclared_members_silently(v1_run, tmp_path):
    """Why the features must reach filters.max_subjects: with too few, members vanish unreported."""
    ds = _load(v1_run, tmp_path, _features_for(v1_run, max_subjects=3))
    assert ds.num_rows == _written(v1_run)
    row = ds[0]
    assert "mask_03.png" in _members(v1_run)[row["__key__"]]  # stored, yet
    assert len(json.loads(row["json"])["subjects"]) > 3 and "mask_03.png" not in row
