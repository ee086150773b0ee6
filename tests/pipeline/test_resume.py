"""Resume: what is committed and current is reused; a changed setting reruns that stage and
those after it, nothing before; damage is repaired to the same bytes."""

from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.local_runner import run_local
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import make_plan
from datagen.store.shards import tmp_path_for

ORDER = ["prompts", "t2i", "segment", "depth", "boxes", "repose", "idcheck", "filter"]


def _build(cfg, paths):
    return run_local(cfg, paths, make_plan(cfg, paths, cfg.stages.order))


def _todo(cfg, paths, selected=None):
    return {j.shard: j.run for j in make_plan(cfg, paths, selected or cfg.stages.order) if j.run}


def _final(paths):
    return {p.name: p.read_bytes() for p in sorted(paths.final_dir.glob("*.tar"))}


def test_fingerprints_chain_and_ignore_execution(small_cfg):
    base = stage_fingerprints(small_cfg, 0)
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.t2i.exec.concurrency = 4
    cfg.stages.boxes.exec.batch_size = 1
    assert stage_fingerprints(cfg, 0) == base
    cfg.stages.boxes.fit.max_points = 500
    changed = stage_fingerprints(cfg, 0)
    assert [s for s in ORDER if changed[s] != base[s]] == ["boxes", "repose", "idcheck", "filter"]
    assert stage_fingerprints(small_cfg, 1) != base
    held_out = small_cfg.model_copy(deep=True)
    held_out.run.split = "eval"  # other seeds from the first stage on
    assert all(a != b for a, b in zip(stage_fingerprints(held_out, 0).values(), base.values(), strict=True))


def test_resume_reuses_and_reruns_only_what_changed(small_cfg, tmp_path):
    paths = RunPaths(tmp_path)
    _build(small_cfg, paths)
    before = _final(paths)
    assert _todo(small_cfg, paths) == {}
    cfg = small_cfg.model_copy(deep=True)
    cfg.filters.max_mask_overlap = 0.4  # read by segment, boxes and filter
    assert set(map(tuple, _todo(cfg, paths).values())) == {("segment", "depth", "boxes", "repose", "idcheck", "filter")}
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.repose.identity_size = 24
    assert set(map(tuple, _todo(cfg, paths).values())) == {("repose", "idcheck", "filter")}
    stamp = {s: paths.stage_tar(s, 0).stat().st_mtime_ns for s in ORDER[:-1]}
    _build(cfg, paths)
    assert {s: paths.stage_tar(s, 0).stat().st_mtime_ns for s in ORDER[:5]} == {s: stamp[s] for s in ORDER[:5]}
    assert _final(paths) != before
    # Back to the first settings: same bytes as the first build.
    _build(small_cfg, paths)
    assert _final(paths) == before


def test_damage_is_repaired_to_the_same_bytes(small_cfg, tmp_path):
    paths = RunPaths(tmp_path)
    _build(small_cfg, paths)
    before = _final(paths)
    paths.final_tar(0).unlink()
    with open(paths.final_tar(1), "r+b") as f:
        f.truncate(1000)
    with open(paths.stage_tar("segment", 2), "r+b") as f:
        f.truncate(500)
    # A finished shard is not redone for a damaged intermediate: only its final output counts.
    assert _todo(small_cfg, paths) == {0: ["filter"], 1: ["filter"]}
    paths.final_tar(2).unlink()
    tmp_path_for(paths.final_tar(2)).write_bytes(b"half a shard")
    todo = _todo(small_cfg, paths)
    assert todo == {0: ["filter"], 1: ["filter"], 2: ["segment", "depth", "boxes", "repose", "idcheck", "filter"]}
    from datagen.store.shards import sweep_temp_files

    sweep_temp_files(paths.root)
    _build(small_cfg, paths)
    assert _final(paths) == before
    assert not list(paths.root.rglob("*.tmp-*"))


def test_partial_stages_run_on_what_earlier_ones_committed(small_cfg, tmp_path):
    paths = RunPaths(tmp_path)
    first = make_plan(small_cfg, paths, ["prompts", "t2i"])
    assert all(j.run == ["prompts", "t2i"] for j in first)
    run_local(small_cfg, paths, first)
    blocked = make_plan(small_cfg, paths, ["depth"])
    assert all(j.run == [] and "segment" in j.blocked for j in blocked)
    rest = make_plan(small_cfg, paths, ["segment", "depth", "boxes", "repose", "idcheck", "filter"])
    assert all(j.run == ORDER[2:] for j in rest)
    run_local(small_cfg, paths, rest)
    whole = RunPaths(tmp_path / "whole")
    _build(small_cfg, whole)
    assert _final(paths) == _final(whole)
