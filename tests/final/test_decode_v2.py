"""The one decoder reads sigma-set/1 and /2 alike: a /1 sample (of the committed /1 run,
tests/fixtures/v1_run), re-encoded as /2's five members (exclusive masks), decodes to the same
image and identities, the exclusive masks, and depth within log16's bound; /2's extra promises
are checked."""

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

from datagen.final.decode import BadSample, decode_sample
from datagen.final.read import iter_final_samples
from datagen.final.writer import encode_v2
from datagen.recipe.instances import exclusive_by_depth
from datagen.store.codec import decode_image, decode_json, encode_json
from helpers import rewrite_as_v2, run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory) -> Path:
    """A copy of the committed sigma-set/1 run (the fixture itself is never touched)."""
    return shutil.copytree(FIXTURE, tmp_path_factory.mktemp("v1") / "run")


def _as_v2(sample):
    meta = copy.deepcopy(sample.meta)
    meta["source"] = {"kind": "generated", "dataset": meta["provenance"]["run_id"], "id": sample.key}
    for subject in meta["subjects"]:
        subject["identity"]["source"] = "repose"
    masks = np.stack(exclusive_by_depth(list(sample.masks), sample.depth))
    return encode_v2(meta, sample.image, masks, sample.depth, sample.identities), masks


def test_a_v2_sample_decodes_to_the_same_arrays_as_its_v1_original(v1_run):
    seen = 0
    for sample in iter_final_samples(v1_run, limit=4):
        assert sample.schema == "sigma-set/1"
        fields, masks = _as_v2(sample)
        assert sorted(fields) == ["depth.png", "identities.png", "instances.png", "json", "png"]
        got = decode_sample(fields, sample.key)
        assert got["json"]["schema"] == "sigma-set/2"
        assert np.array_equal(got["image"], sample.image)
        assert np.array_equal(got["identities"], sample.identities)
        assert np.array_equal(got["masks"], masks) and not np.any(got["masks"].sum(axis=0) > 1)
        known = np.isfinite(sample.depth) & (sample.depth > 0)
        assert np.array_equal(np.isnan(got["depth"]), ~known)
        assert np.max(np.abs(got["depth"][known] / sample.depth[known] - 1)) <= 1e-4
        v1 = decode_sample(sample.members, sample.key)  # and /1 still reads as before
        assert v1["json"]["schema"] == "sigma-set/1" and np.array_equal(v1["masks"], sample.masks)
        seen += 1
    assert seen == 4


def test_v2_promises_are_checked(finished_run):
    sample = next(iter_final_samples(finished_run))
    fields, _ = _as_v2(sample)

    def broken(change):
        meta = decode_json(fields["json"])
        change(meta)
        return {**fields, "json": encode_json(meta)}

    with pytest.raises(BadSample, match="needs source"):
        decode_sample(broken(lambda m: m.pop("source")), sample.key)
    with pytest.raises(BadSample, match="identity.source"):
        decode_sample(broken(lambda m: m["subjects"][0]["identity"].pop("source")), sample.key)
    with pytest.raises(BadSample, match="log16"):
        decode_sample(broken(lambda m: m["depth"].pop("log_min")), sample.key)
    with pytest.raises(BadSample, match="no instances.png"):
        decode_sample({k: v for k, v in fields.items() if k != "instances.png"}, sample.key)
    with pytest.raises(BadSample, match=r"instances.png: value \d+ but only 2 subjects"):
        decode_sample(broken(lambda m: m.update(subjects=m["subjects"][:2])), sample.key)
    with pytest.raises(BadSample, match="expected one of sigma-set/1, sigma-set/2"):
        decode_sample(broken(lambda m: m.update(schema="sigma-set/9")), sample.key)


def test_encode_v2_refuses_overlapping_masks(finished_run):
    sample = next(iter_final_samples(finished_run))
    meta = copy.deepcopy(sample.meta)
    meta["source"] = {"kind": "generated", "dataset": "d", "id": sample.key}
    for subject in meta["subjects"]:
        subject["identity"]["source"] = "repose"
    overlapping = np.stack([sample.masks[0], sample.masks[0]] + list(sample.masks[2:]))
    with pytest.raises(ValueError, match="overlaps"):
        encode_v2(meta, sample.image, overlapping, sample.depth, sample.identities)


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory):
    """The /1 fixture's run, re-encoded as /2."""
    run = shutil.copytree(FIXTURE, tmp_path_factory.mktemp("v2") / "run")
    rewrite_as_v2(run)
    return run


def test_readers_give_the_same_sample_from_a_v1_run_and_its_v2_copy(v1_run, v2_run):
    pairs = list(zip(iter_final_samples(v1_run), iter_final_samples(v2_run), strict=True))
    assert len(pairs) == sum(1 for _ in iter_final_samples(v1_run)) > 0
    for one, two in pairs:
        assert (one.key, one.schema, two.schema) == (two.key, "sigma-set/1", "sigma-set/2")
        assert np.array_equal(two.image, one.image) and np.array_equal(two.identities, one.identities)
        assert np.array_equal(two.masks, np.stack(exclusive_by_depth(list(one.masks), one.depth)))
        for i in range(len(one.subjects)):
            assert np.array_equal(decode_image(two.identity_png(i)), decode_image(one.identity_png(i)))
            assert np.array_equal(decode_image(two.mask_png(i)) > 127, two.masks[i])
            crop = decode_image(two.crop(i))
            x0, y0, x1, y1 = two.subjects[i]["box_2d"]
            assert crop.shape == (y1 - y0, x1 - x0, 4)
            assert np.array_equal(crop[..., 3] > 0, two.masks[i][y0:y1, x0:x1])


def test_show_and_browse_read_a_v2_run(v1_run, v2_run, tmp_path):
    assert run_cli("show", str(v2_run), "--out", str(tmp_path / "sheet.png")).returncode == 0
    done = run_cli("browse", str(v2_run), "--out", str(tmp_path / "site"))
    assert done.returncode == 0, done.stderr
    pages = list((tmp_path / "site").rglob("identities.png"))
    assert len(pages) == sum(1 for _ in iter_final_samples(v1_run))


def test_an_instance_map_stored_in_another_mode_is_refused(finished_run):
    """RGB converted to L would turn coloured pixels into brightness values, so wrong masks."""
    import io

    from PIL import Image

    from datagen.final.decode import BadSample, decode_sample
    from datagen.store.shards import read_tar

    shard = min((finished_run / "final").glob("shard-*.tar"))
    key, members = min(read_tar(shard).items())
    instances = Image.open(io.BytesIO(members["instances.png"]))
    buf = io.BytesIO()
    instances.convert("RGB").save(buf, format="PNG")
    decode_sample(members, key)  # as stored: fine
    with pytest.raises(BadSample, match="^instances.png is mode RGB, expected L$") as err:
        decode_sample({**members, "instances.png": buf.getvalue()}, key)
    assert err.value.reason == "image"
