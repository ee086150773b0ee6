"""Error handling of one (stage, shard): bad samples become rejections, bad shards fail loudly."""

import json

import pytest

from datagen.pipeline.local_runner import run_local
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import make_plan
from datagen.stages import STAGES, SegmentStage


class _Boom(ValueError):
    pass


@pytest.fixture
def flaky_segment(monkeypatch):
    """The real segment stage, raising for chosen sample indices (a backend bug, say)."""
    bad: set[int] = set()
    real = SegmentStage._oracle

    def one(self, s):
        if s.index in bad:
            raise _Boom(f"sample {s.index}")
        return real(self, s)

    monkeypatch.setattr(SegmentStage, "_oracle", one)
    return bad


def test_a_raising_sample_is_rejected_and_the_shard_goes_on(small_cfg, tmp_path, flaky_segment):
    flaky_segment.add(1)
    paths = RunPaths(tmp_path)
    outcomes = run_local(small_cfg, paths, make_plan(small_cfg, paths, small_cfg.stages.order))
    assert all(o.status == "done" for o in outcomes)
    marker = json.loads(paths.stage_done("segment", 0).read_text())
    assert ["000000_000001", "error:segment:_Boom"] in marker["rejected_keys"]
    assert marker["rejected"]["error:segment:_Boom"] == 1
    stats = json.loads(paths.final_stats(0).read_text())
    assert stats["rejected"]["segment"]["error:segment:_Boom"] == 1
    logs = "".join(p.read_text() for p in paths.logs_dir.glob("*.log")) if paths.logs_dir.exists() else ""
    assert logs == "" or "_Boom" in logs


def test_a_shard_where_most_samples_raise_fails_and_the_rest_finish(small_cfg, tmp_path, flaky_segment):
    flaky_segment.update({4, 5, 6})  # 3 of shard 1's 4 samples
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.segment.exec.retries = 1
    paths = RunPaths(tmp_path)
    outcomes = run_local(cfg, paths, make_plan(cfg, paths, cfg.stages.order))
    failed = [o for o in outcomes if o.status == "failed"]
    assert [(o.stage, o.shard) for o in failed] == [("segment", 1)]
    assert "3 of 4 samples raised" in failed[0].error
    assert json.loads(paths.failed_marker("segment", 1).read_text())["attempts"] == 2
    assert paths.final_tar(0).exists() and paths.final_tar(2).exists() and not paths.final_tar(1).exists()
    # Rerunning after the bug is fixed redoes only what failed.
    flaky_segment.clear()
    jobs = [j for j in make_plan(cfg, paths, cfg.stages.order) if j.run]
    assert [(j.shard, j.run[0]) for j in jobs] == [(1, "segment")]


def test_every_stage_is_registered():
    assert list(STAGES) == ["prompts", "t2i", "source", "caption", "segment", "depth", "boxes", "repose", "idcheck", "filter"]
