"""`datagen validate` catches a sample that breaks FORMAT.md's invariants."""

import json
import tarfile

from datagen.pipeline.local_runner import run_local
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import make_plan
from datagen.store.shards import tar_bytes
from datagen.final.validate import validate_run


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
