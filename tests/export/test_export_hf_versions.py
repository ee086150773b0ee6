"""datagen export hf reads sigma-set/1 and /2 into one row layout: the committed /1 fixture and
its /2 rewrite export to the same features, their rows decode to what decode_sample gives (a /1
run's masks made exclusive, depth within log16's bound), /2 members pass through byte for byte,
and the card's numpy recipe turns a row into masks, metres and identity images."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from datagen.export.hf import check_row, export_hf, sample_features
from datagen.final.decode import decode_sample
from datagen.final.read import iter_final_samples
from datagen.recipe.instances import exclusive_by_depth
from datagen.store.depth_png import LogRange, decode_depth_png
from helpers import rewrite_as_v2
from test_export_hf import _rewrite_member, rebuild_metadata

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"
MEMBERS = {"instances": "instances.png", "identities": "identities.png", "depth": "depth.png"}


def _export(run: Path, out: Path) -> datasets.Dataset:
    export_hf(run, out, overwrite=False, push_to_hub=None, private=False, say=lambda _: None)
    return datasets.load_from_disk(str(out))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The /1 fixture and the same run rewritten as /2 (copies: the fixture is never written)."""
    root = tmp_path_factory.mktemp("versions")
    v1 = shutil.copytree(FIXTURE, root / "v1")
    v2 = shutil.copytree(FIXTURE, root / "v2")
    rewrite_as_v2(v2)
    return {"sigma-set/1": v1, "sigma-set/2": v2}


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory) -> dict[str, tuple[Path, datasets.Dataset]]:
    root = tmp_path_factory.mktemp("exports")
    return {schema: (root / schema[-1], _export(run, root / schema[-1])) for schema, run in runs.items()}


def _raw(ds: datasets.Dataset, column: str) -> list[bytes]:
    return [x["bytes"] for x in ds.cast_column(column, datasets.Image(decode=False))[column]]


@pytest.mark.parametrize("schema", ["sigma-set/1", "sigma-set/2"])
def test_rows_decode_to_what_decode_sample_gives(runs, exports, schema):
    _, ds = exports[schema]
    assert ds.features == sample_features() and ds.num_rows == 6
    depth_pngs = _raw(ds, "depth")
    samples = list(iter_final_samples(runs[schema]))
    for sample, row, depth_png in zip(samples, ds, depth_pngs, strict=True):
        assert row["schema"] == sample.schema == schema
        d = decode_sample(sample.members, sample.key)
        n = len(d["json"]["subjects"])
        masks = np.asarray(row["instances"])[None] == np.arange(1, n + 1)[:, None, None]
        if schema == "sigma-set/2":
            np.testing.assert_array_equal(masks, d["masks"])
        else:  # /1 masks may overlap: the row holds them made exclusive (the fixture's do not overlap)
            np.testing.assert_array_equal(masks, np.stack(exclusive_by_depth(list(d["masks"]), d["depth"])))
            np.testing.assert_array_equal(masks, d["masks"])
        info = row["depth_info"]
        depth = decode_depth_png(depth_png, LogRange(info["log_min"], info["log_max"]))
        known = np.isfinite(d["depth"]) & (d["depth"] > 0)
        np.testing.assert_array_equal(np.isnan(depth), ~known)
        assert np.max(np.abs(depth[known] / d["depth"][known] - 1)) <= 1e-4
        np.testing.assert_array_equal(np.asarray(row["identities"]).reshape(d["identities"].shape), d["identities"])
        np.testing.assert_array_equal(np.asarray(row["image"]), d["image"])
        assert check_row(row) is None
        assert rebuild_metadata(row) == json.loads(sample.members["json"])


def test_v2_members_pass_through_and_v1_rows_match_them(runs, exports):
    (_, v1), (_, v2) = exports["sigma-set/1"], exports["sigma-set/2"]
    samples = list(iter_final_samples(runs["sigma-set/2"]))
    for column, member in MEMBERS.items():
        assert _raw(v2, column) == [s.members[member] for s in samples]  # byte for byte
    assert v1["key"] == v2["key"]
    for one, two in zip(v1, v2, strict=True):
        for column in ("image", "instances", "identities", "depth"):
            np.testing.assert_array_equal(np.asarray(one[column]), np.asarray(two[column]), err_msg=column)
        assert one["depth_info"] == two["depth_info"] and one["source"] == two["source"]
        assert [s["identity"] for s in one["subjects"]] == [s["identity"] for s in two["subjects"]]


def test_the_cards_say_how_they_were_made(exports):
    v1_card = (exports["sigma-set/1"][0] / "README.md").read_text()
    v2_card = (exports["sigma-set/2"][0] / "README.md").read_text()
    assert "**Stored as:** sigma-set/1 (6 samples)" in v1_card and "**Stored as:** sigma-set/2 (6 samples)" in v2_card
    assert "**6 samples were stored as sigma-set/1** and converted at export" in v1_card
    assert "exclusive_by_depth" in v1_card and "converted at export" not in v2_card
    assert "# v1-fixture (sigma-set/1)" in v1_card and "# v1-fixture (sigma-set/2)" in v2_card


@pytest.mark.parametrize("schema", ["sigma-set/1", "sigma-set/2"])
def test_the_cards_numpy_recipe_gives_masks_metres_and_identities(runs, exports, schema):
    out, ds = exports[schema]
    card = (out / "README.md").read_text()
    recipe = next(block for block in re.findall(r"```python\n(.*?)```", card, re.S) if "metres =" in block)
    scope: dict = {"ds": ds}
    exec(recipe, scope)  # noqa: S102 - the card's own code, run as a reader would
    sample = next(iter_final_samples(runs[schema]))
    want = decode_sample(sample.members, sample.key)
    np.testing.assert_array_equal(scope["masks"], want["masks"])
    np.testing.assert_array_equal(scope["ids"], want["identities"])
    known = np.isfinite(want["depth"]) & (want["depth"] > 0)
    np.testing.assert_array_equal(np.isnan(scope["metres"]), ~known)
    assert np.max(np.abs(scope["metres"][known] / want["depth"][known] - 1)) <= 1e-4


def test_nan_and_inf_depth_of_a_v1_sample_become_unknown(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "run")
    first = next(iter_final_samples(run))
    depth = first.depth.copy()
    depth[0, :5], depth[1, :3] = np.nan, np.inf
    buf = io.BytesIO()
    np.save(buf, depth)
    _rewrite_member(first.shard, f"{first.key}.depth.npy", buf.getvalue())
    ds = _export(run, tmp_path / "hf")
    row = ds[0]
    codes = np.asarray(row["depth"])
    assert (codes[0, :5] == 0).all() and (codes[1, :3] == 0).all()
    info = row["depth_info"]
    got = decode_depth_png(_raw(ds, "depth")[0], LogRange(info["log_min"], info["log_max"]))
    known = np.isfinite(depth) & (depth > 0)
    np.testing.assert_array_equal(np.isnan(got), ~known)
    assert np.max(np.abs(got[known] / depth[known] - 1)) <= 1e-4


def test_the_readback_check_names_a_row_that_does_not_decode(exports):
    _, ds = exports["sigma-set/2"]
    row = ds[0]
    n = len(row["subjects"])
    assert check_row(row) is None
    above = np.asarray(row["instances"]).copy()
    above[0, 0] = n + 1
    assert check_row({**row, "instances": Image.fromarray(above)}) == f"instances.png: value {n + 1} but only {n} subjects"
    eight_bit = Image.fromarray((np.asarray(row["depth"]) >> 8).astype(np.uint8))
    assert check_row({**row, "depth": eight_bit}).startswith("depth is mode L")
    short = Image.fromarray(np.asarray(row["identities"])[:-1])
    assert check_row({**row, "identities": short}).startswith("identities is")
