"""Completion markers have one owner and one rule: current fingerprint + recorded size (+ sha256
when asked), the final stage's stats read like any stage's marker, and damage is named."""

import shutil

from datagen.config import load_run_config
from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.markers import RunMarkers, final_kept, final_shard_states
from datagen.store.paths import RunPaths


def _markers(run):
    cfg = load_run_config(run)
    return cfg, RunMarkers(cfg, RunPaths(run))


def test_every_stage_of_a_finished_run_counts_and_reads_the_same_way(finished_run):
    cfg, markers = _markers(finished_run)
    for shard in range(cfg.num_shards):
        for stage, state in markers.shard_states(shard).items():
            assert state.marker is not None and state.failure is None, (stage, shard)
            own = markers.own_figures(stage, state.marker)
            assert own.samples_out <= own.samples_in
            assert own.samples_in - own.samples_out == sum(own.rejected.values())
    final = markers.final
    assert markers.marker_path(final, 0) == RunPaths(finished_run).final_stats(0)
    assert markers.output_tar("prompts", 0) == RunPaths(finished_run).stage_tar("prompts", 0)
    kept, done = final_kept(cfg, RunPaths(finished_run))
    assert done == cfg.num_shards and kept == sum(
        markers.own_figures(final, markers.read(final, s)).samples_out for s in range(cfg.num_shards)
    )


def test_a_marker_counts_only_for_its_fingerprint_and_its_outputs_bytes(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    cfg, markers = _markers(run)
    fp = stage_fingerprints(cfg, 1)["depth"]
    assert markers.counted("depth", 1, fp, verify="sha256") is not None
    assert markers.counted("depth", 1, "another-fingerprint") is None
    tar = markers.output_tar("depth", 1)
    data = bytearray(tar.read_bytes())
    data[-1] ^= 1  # same size, other bytes: only hashing sees it
    tar.write_bytes(bytes(data))
    assert markers.counted("depth", 1, fp) is not None
    assert markers.counted("depth", 1, fp, verify="sha256") is None
    tar.write_bytes(bytes(data[:1000]))
    assert markers.counted("depth", 1, fp) is None
    assert "damaged (1000 bytes" in markers.damage("depth", 1, fp)
    tar.unlink()
    assert markers.counted("depth", 1, fp) is None and markers.damage("depth", 1, fp) is None


def test_a_truncated_final_shard_is_named_not_skipped(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    cfg, markers = _markers(run)
    tar = markers.output_tar(markers.final, 2)
    tar.write_bytes(tar.read_bytes()[:512])
    states = final_shard_states(cfg, RunPaths(run))
    assert [(s, m is not None, d is not None) for s, m, d in states] == [(0, True, False), (1, True, False), (2, False, True)]
