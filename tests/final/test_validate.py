"""`datagen validate` catches a sample that breaks FORMAT.md's invariants, sigma-set/1 and /2."""

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen.config import load_run_config
from datagen.final.validate import validate_run
from datagen.pipeline.local_runner import run_local
from datagen.pipeline.resume import make_plan
from datagen.store.codec import encode_json, encode_png
from datagen.store.paths import RunPaths
from datagen.store.shards import read_tar, tar_bytes
from helpers import rewrite_as_v2, run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"


def _members(path):
    with tarfile.open(path) as t:
        return [(m.name, t.extractfile(m).read()) for m in t.getmembers()]


def test_validator_passes_a_run_and_catches_broken_samples(small_cfg, tmp_path):
    paths = RunPaths(tmp_path)
    run_local(small_cfg, paths, make_plan(small_cfg, paths, small_cfg.stages.order))
    count, errors = validate_run(tmp_path, small_cfg)
    assert count > 0 and errors == []

    shard = paths.final_tar(0)
    members = _members(shard)
    name, data = next((n, d) for n, d in members if n.endswith(".json"))
    meta = json.loads(data)
    meta["subjects"][0]["box_2d"][2] += 3  # no longer the mask's tight box
    meta["subjects"][1]["box_3d"]["corners"] = [[x + 100.0, y, z] for x, y, z in meta["subjects"][1]["box_3d"]["corners"]]
    meta["subjects"][1]["intensity"] = 99
    members = [(n, json.dumps(meta).encode() if n == name else d) for n, d in members]
    members.append(members[1])  # a member twice: the key's members are no longer contiguous
    shard.write_bytes(tar_bytes(members))
    _, errors = validate_run(tmp_path, small_cfg)
    text = "\n".join(errors)
    assert "subject 0 box_2d" in text
    assert "subject 1 3D box breaks the projection invariant (box3d_outside_image)" in text
    assert "subject 1 intensity 99" in text
    assert "not contiguous" in text


# ---------------------------------------------------------------- sigma-set/2


@pytest.fixture
def v2_run(finished_run, tmp_path) -> Path:
    run = shutil.copytree(finished_run, tmp_path / "run")
    rewrite_as_v2(run)
    return run


def test_validator_passes_a_v2_run_and_the_v1_fixture(v2_run, tmp_path):
    count, errors = validate_run(v2_run, load_run_config(v2_run))
    assert count > 0 and errors == []
    schemas = {json.loads(f["json"])["schema"] for shard in (v2_run / "final").glob("shard-*.tar") for f in read_tar(shard).values()}
    assert schemas == {"sigma-set/2"}
    fixture = shutil.copytree(FIXTURE, tmp_path / "v1")
    assert validate_run(fixture, load_run_config(fixture)) == (6, [])


def _png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _drop_instances(fields):
    del fields["instances.png"]


def _loose_box(fields):
    meta = json.loads(fields["json"])
    meta["subjects"][1]["box_2d"][3] += 1
    fields["json"] = encode_json(meta)


def _instance_above_n(fields):
    instances = _png_array(fields["instances.png"]).copy()
    instances[0, 0] = len(json.loads(fields["json"])["subjects"]) + 1
    fields["instances.png"] = encode_png(instances)


def _depth_8_bit(fields):
    codes = _png_array(fields["depth.png"])
    fields["depth.png"] = encode_png((codes >> 8).astype(np.uint8))


def _identities_too_short(fields):
    stacked = _png_array(fields["identities.png"])
    fields["identities.png"] = encode_png(stacked[: stacked.shape[0] - 4])


def _no_source(fields):
    meta = json.loads(fields["json"])
    del meta["source"]
    fields["json"] = encode_json(meta)


def _wrong_mask_area(fields):
    meta = json.loads(fields["json"])
    meta["subjects"][0]["mask_area_frac"] += 0.01
    fields["json"] = encode_json(meta)


def _empty_subject(fields):
    instances = _png_array(fields["instances.png"]).copy()
    instances[instances == 3] = 0
    fields["instances.png"] = encode_png(instances)


def _stray_v1_mask(fields):
    fields["mask_00.png"] = encode_png(np.zeros((4, 4), dtype=np.uint8))


def _lone_control(fields):
    fields["control.png"] = encode_png(np.zeros((4, 4, 3), dtype=np.uint8))


def _rgb_instances(fields):
    instances = _png_array(fields["instances.png"])
    fields["instances.png"] = encode_png(np.repeat(instances[..., None], 3, axis=2))


BREAKAGES = [
    (_drop_instances, "sigma-set/2 sample lacks instances.png"),
    (_loose_box, "subject 1 box_2d"),
    (_instance_above_n, "instances.png: value"),
    (_depth_8_bit, "depth.png: expected a 16-bit greyscale PNG, got mode L"),
    (_identities_too_short, "identities.png is 32x"),
    (_no_source, "sigma-set/2 needs source"),
    (_wrong_mask_area, "subject 0 mask_area_frac"),
    (_empty_subject, "subject 2 has an empty mask"),
    (_stray_v1_mask, "members beyond its five: mask_00.png"),
    (_lone_control, "has control.png but"),
    (_rgb_instances, "instances.png is mode RGB, expected L"),
]


def test_v2_breakages_are_one_line_each_naming_the_sample(v2_run):
    """Each breakage applied to its own sample: that sample gets exactly one line, the others none."""
    shards = sorted((v2_run / "final").glob("shard-*.tar"))
    samples = [(shard, key) for shard in shards for key in sorted(read_tar(shard))]
    assert len(samples) >= len(BREAKAGES)
    expected = {}
    for shard in shards:
        fields_by_key = read_tar(shard)
        for (where, key), (breakage, text) in zip(samples, BREAKAGES):
            if where == shard:
                breakage(fields_by_key[key])
                expected[key] = text
        members = [(f"{key}.{name}", data) for key, fields in sorted(fields_by_key.items()) for name, data in sorted(fields.items())]
        shard.write_bytes(tar_bytes(members))
    count, errors = validate_run(v2_run, load_run_config(v2_run))
    assert count == len(samples)
    by_key = {key: [e for e in errors if e.startswith(f"{key}: ")] for _, key in samples}
    for key, text in expected.items():
        assert len(by_key[key]) == 1 and text in by_key[key][0], (key, text, by_key[key])
    assert all(by_key[key] == [] for _, key in samples if key not in expected)
    assert len(errors) == len(expected)


def test_cli_validates_a_v2_run(v2_run):
    done = run_cli("validate", str(v2_run))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("samples checked, 0 problems")
    assert "sigma-set/1 or /2" in run_cli("validate", "--help").stdout
