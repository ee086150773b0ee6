"""Resume's cheap check (output.verify: index, the default) and `datagen verify`, the full one.

The documented trade-off: the default reads each committed tar's member headers, not its data,
so bytes changed in place at the same size pass it; `datagen verify RUN` and
`output.verify: sha256` catch them. A member renamed, cut or resized is redone by any resume,
and markers written before the index checksum existed still resume (by size)."""

import json
import shutil
import tarfile

from datagen.config import load_run_config
from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.markers import RunMarkers
from datagen.pipeline.resume import make_plan
from datagen.pipeline.target_cut import _move, surplus_dir
from datagen.pipeline.verify import verify_run
from datagen.store.paths import RunPaths
from datagen.store.shards import commit_tar, file_sha256, tar_bytes, tar_index_sha256
from helpers import run_cli

MEMBERS = [("000000_000000.json", b"{}"), ("000000_000000.png", b"\x89PNG" * 300), ("000000_000001.json", b"[1]")]


def _members(tar):
    with tarfile.open(tar) as t:
        return [(i.name, t.extractfile(i).read()) for i in t]


def _flip_data_byte(tar):
    """Change one byte inside the first member's data: same size, same headers."""
    with tarfile.open(tar) as t:
        offset = next(iter(t)).offset_data
    data = bytearray(tar.read_bytes())
    data[offset] ^= 0xFF
    tar.write_bytes(bytes(data))


def _todo(cfg, run):
    return {j.shard: j.run for j in make_plan(cfg, RunPaths(run), cfg.stages.order) if j.run}


def _copy(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    return run, load_run_config(run)


def test_the_index_checksum_covers_headers_not_data(tmp_path):
    path = tmp_path / "shard-000000.tar"
    sha, size = commit_tar(path, MEMBERS)
    index = tar_index_sha256(path)
    assert index is not None and index != sha
    _flip_data_byte(path)
    assert tar_index_sha256(path) == index and file_sha256(path) != sha and path.stat().st_size == size
    for members in (
        [("000000_000009.json", b"{}"), *MEMBERS[1:]],  # renamed, same size
        [MEMBERS[0], ("000000_000000.png", b"\x89PNG" * 299 + b"PNG"), MEMBERS[2]],  # a member cut short
        MEMBERS[::-1],  # reordered
        MEMBERS[:2],  # one dropped
    ):
        other = tmp_path / "other.tar"
        other.write_bytes(tar_bytes(members))
        assert tar_index_sha256(other) != index, members
    path.write_bytes(path.read_bytes()[:700])  # cut short before the end-of-archive block
    assert tar_index_sha256(path) is None
    path.write_bytes(b"not a tar" * 100)
    assert tar_index_sha256(path) is None
    assert tar_index_sha256(tmp_path / "missing.tar") is None


def test_every_marker_records_its_index_checksum(finished_run):
    cfg = load_run_config(finished_run)
    assert cfg.output.verify == "index"  # the default
    markers = RunMarkers(cfg, RunPaths(finished_run))
    for shard in range(cfg.num_shards):
        for stage in cfg.stages.order:
            marker = markers.read(stage, shard)
            assert marker["index_sha256"] == tar_index_sha256(markers.output_tar(stage, shard)), (stage, shard)


def test_bytes_changed_in_place_pass_the_default_but_not_sha256_nor_verify(finished_run, tmp_path):
    run, cfg = _copy(finished_run, tmp_path)
    paths = RunPaths(run)
    _flip_data_byte(paths.final_tar(1))
    _flip_data_byte(paths.stage_tar("depth", 2))
    assert _todo(cfg, run) == {}  # the documented trade-off of the cheap default
    strict = cfg.model_copy(deep=True)
    strict.output.verify = "sha256"
    assert stage_fingerprints(strict, 0) == stage_fingerprints(cfg, 0)  # how to check is no setting of the output
    # Shard 2's final output is whole: the damaged depth under a finished shard is verify's to report.
    assert _todo(strict, run) == {1: ["filter"]}
    report = verify_run(cfg, paths, jobs=2)
    assert report.checked == len(cfg.stages.order) * cfg.num_shards
    assert report.problems == [
        f"{paths.stage_tar('depth', 2)}: sha256 differs from its marker (same size: bytes changed in place)",
        f"{paths.final_tar(1)}: sha256 differs from its marker (same size: bytes changed in place)",
    ]
    assert verify_run(cfg, paths, stage="depth").problems == report.problems[:1]
    assert verify_run(cfg, paths, stage="final").problems == report.problems[1:]
    assert verify_run(cfg, paths, stage="segment").problems == []
    done = run_cli("verify", str(run), "--stage", "filter")
    assert done.returncode == 1 and done.stderr.splitlines()[0] == report.problems[1], done.stderr
    assert f"{cfg.num_shards} shards checked" in done.stdout


def test_a_renamed_or_resized_member_is_redone_by_the_default_resume(finished_run, tmp_path):
    run, cfg = _copy(finished_run, tmp_path)
    paths = RunPaths(run)
    # Damage under a finished shard is left to `datagen verify`: resume judges a shard by its
    # final output; here the final output of shard 0 is gone, so its intermediates are checked.
    paths.final_tar(0).unlink()
    seg = paths.stage_tar("segment", 0)
    members = _members(seg)
    size = seg.stat().st_size
    name, data = members[0]
    members[0] = ("000000_000099" + name[13:], data)  # another sample's key, same length
    seg.write_bytes(tar_bytes(members))
    assert seg.stat().st_size == size  # the size alone would take it
    final = paths.final_tar(2)
    members = _members(final)
    members[-1] = (members[-1][0], members[-1][1] + b"\0" * 20000)  # resized: another size
    final.write_bytes(tar_bytes(members))
    assert _todo(cfg, run) == {0: ["segment", "depth", "boxes", "repose", "idcheck", "filter"], 2: ["filter"]}
    problems = verify_run(cfg, paths).problems
    assert len(problems) == 3 and "differs" in problems[0], problems
    assert "missing" in problems[1] and "bytes, its marker says" in problems[2], problems


def test_markers_without_the_index_checksum_still_resume(finished_run, tmp_path):
    run, cfg = _copy(finished_run, tmp_path)
    markers = RunMarkers(cfg, RunPaths(run))
    for shard in range(cfg.num_shards):
        for stage in cfg.stages.order:
            path = markers.marker_path(stage, shard)
            old = json.loads(path.read_text())
            del old["index_sha256"]  # as an older datagen wrote it
            path.write_text(json.dumps(old))
    assert _todo(cfg, run) == {}
    markers.output_tar("filter", 1).unlink()  # shard 1 not finished: its intermediates are checked
    with open(markers.output_tar("boxes", 1), "r+b") as f:
        f.truncate(1024)
    assert _todo(cfg, run) == {1: ["boxes", "repose", "idcheck", "filter"]}  # by size, as before


def test_surplus_shards_of_a_target_are_verified_too(finished_run, tmp_path):
    run, cfg = _copy(finished_run, tmp_path)
    paths = RunPaths(run)
    _move(paths.final_dir, surplus_dir(paths), 2)  # as a --target-kept cut leaves a shard past it
    moved = surplus_dir(paths) / paths.final_tar(2).name
    assert moved.exists() and not paths.final_tar(2).exists()
    report = verify_run(cfg, paths)
    assert report.checked == len(cfg.stages.order) * cfg.num_shards and report.problems == []
    _flip_data_byte(moved)
    problems = [f"{moved}: sha256 differs from its marker (same size: bytes changed in place)"]
    assert verify_run(cfg, paths).problems == problems
    assert verify_run(cfg, paths, stage="surplus").problems == problems
    assert verify_run(cfg, paths, stage="surplus").checked == 1
    assert verify_run(cfg, paths, stage="final").problems == []
    done = run_cli("verify", str(run), "--stage", "surplus")
    assert done.returncode == 1 and done.stderr.splitlines()[0] == problems[0], done.stderr


def test_verify_of_a_clean_run_exits_0(finished_run):
    cfg = load_run_config(finished_run)
    done = run_cli("verify", str(finished_run))
    assert done.returncode == 0, done.stderr
    assert f"{len(cfg.stages.order) * cfg.num_shards} shards checked" in done.stdout and ", 0 problems" in done.stdout
    bad = run_cli("verify", str(finished_run), "--stage", "nope")
    assert bad.returncode == 2 and "--stage: 'nope' is not a stage of this run" in bad.stderr
