"""Repair before drop: a subject idcheck would reject is re-posed again (new seed, next template)
up to `stages.repose.retries` times; idcheck counts first-try, repaired and dropped subjects."""

from __future__ import annotations

import copy
import json
import zlib

import numpy as np
import pytest

from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.local_runner import run_local
from datagen.pipeline.resume import make_plan
from datagen.stages.idcheck import IdcheckStage
from datagen.stages.repose import ReposeStage
from datagen.store.inflight import Sample
from datagen.store.paths import RunPaths
from datagen.views.report import build_report
from datagen.views.status import collect_status, render_status


def _stand_in(image, mask, identity) -> float:
    """A similarity that depends on the identity image only: about a third of edits 'fail'
    (below the histogram bound 0.3), and a new edit draws a new score."""
    return (zlib.crc32(identity.tobytes()) % 1000) / 1000


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr("datagen.stages.idcheck.histogram_similarity", _stand_in)


def _cfg(small_cfg, retries: int):
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.repose.retries = retries
    cfg.filters.min_subjects = 1  # keep samples whatever they lose: the subjects are what is compared
    return cfg


def _repose_and_check(cfg, samples):
    samples = copy.deepcopy(samples)
    reposed = ReposeStage(cfg).process_batch(samples)
    checked = copy.deepcopy(reposed)  # idcheck drops subjects in place, kept or rejected
    idcheck = IdcheckStage(cfg)
    idcheck.process_batch(checked)
    return reposed, checked, idcheck.shard_figures(checked)


def _by_sid(s: Sample) -> dict[int, tuple[dict, np.ndarray]]:
    return {subj["sid"]: (subj, s.arrays["identity"][i]) for i, subj in enumerate(s.subjects)}


def test_a_failing_subject_is_repaired_with_another_identity_and_counted(small_cfg, through, stand_in):
    samples = through("boxes", cfg=_cfg(small_cfg, 0))
    before, kept0, counts0 = _repose_and_check(_cfg(small_cfg, 0), samples)
    after, kept2, counts2 = _repose_and_check(_cfg(small_cfg, 2), samples)
    checked = sum(len(s.subjects) for s in before)
    assert sum(counts0["identity_repair"].values()) == sum(counts2["identity_repair"].values()) == checked
    assert counts0["identity_repair"]["repaired"] == 0 and counts0["identity_repair"]["dropped"] > 0
    assert counts2["identity_repair"]["repaired"] > 0
    assert counts2["identity_repair"]["dropped"] < counts0["identity_repair"]["dropped"]
    repaired = 0
    for s0, s2, k0, k2 in zip(before, after, kept0, kept2, strict=True):
        first, second = _by_sid(s0), _by_sid(s2)
        dropped0 = {r["name"] for r in k0.meta.get("rejected_subjects", []) if r["stage"] == "idcheck"}
        for sid, (subj, ident) in second.items():
            n = subj["repose"]["attempts"]
            assert 1 <= n <= 3 and first[sid][0]["repose"]["attempts"] == 1
            if n == 1:  # passed first: the same edit as with retries 0
                assert np.array_equal(ident, first[sid][1])
                continue
            assert not np.array_equal(ident, first[sid][1])  # a new edit, not the first again
            assert subj["name"] in dropped0  # which retries 0 drops
            if n < 3 or _stand_in(None, None, ident) >= 0.3:
                assert sid in _by_sid(k2), "repaired, so idcheck keeps it"
                repaired += 1
    assert repaired == counts2["identity_repair"]["repaired"]


def test_retries_zero_makes_one_edit_each_and_reads_no_idcheck_settings(small_cfg, through, stand_in):
    cfg = _cfg(small_cfg, 0)
    stage = ReposeStage(cfg)
    assert stage.checker is None
    samples = through("boxes", cfg=cfg)
    reposed, kept, counts = _repose_and_check(cfg, samples)
    # The edit is the one repose always made: attempt 0's stream, stage_rng(seed, "repose", sid).
    from datagen.seeds import stage_rng
    from datagen.world.render import render_identity

    s = reposed[0]
    subj = s.subjects[0]
    rng = stage_rng(s.seed, "repose", subj["sid"])
    want = render_identity(s.meta["truth"]["scene"]["subjects"][subj["sid"]], cfg.stages.repose.identity_size, rng, cfg.world)
    assert np.array_equal(s.arrays["identity"][0], want)
    assert all(x["repose"]["attempts"] == 1 for r in reposed for x in r.subjects)
    # Dropped exactly where the check says, as before repair existed.
    for r, k in zip(reposed, kept, strict=True):
        lost = {x["name"] for x, im in zip(r.subjects, r.arrays["identity"], strict=True) if _stand_in(None, None, im) < 0.3}
        assert {d["name"] for d in k.meta.get("rejected_subjects", []) if d["stage"] == "idcheck"} == lost
    # Idcheck's settings enter repose's fingerprint only when repose repairs with them.
    stricter = cfg.model_copy(deep=True)
    stricter.stages.idcheck.min_similarity = 0.5
    assert stage_fingerprints(cfg, 0)["repose"] == stage_fingerprints(stricter, 0)["repose"]
    cfg2, stricter2 = _cfg(small_cfg, 2), stricter.model_copy(deep=True)
    stricter2.stages.repose.retries = 2
    assert stage_fingerprints(cfg2, 0)["repose"] != stage_fingerprints(stricter2, 0)["repose"]


def test_the_next_attempt_takes_the_next_template_and_a_new_seed(small_cfg, through):
    cfg = _cfg(small_cfg, 2)
    stage = ReposeStage(cfg)
    s = through("boxes", cfg=cfg)[0]
    subj = s.subjects[0]
    templates = cfg.stages.repose.templates
    drawn = [stage.instruction(s, subj, k) for k in range(3)]
    names = [templates.index(next(t for t in templates if t.format(name=subj["name"]) == text)) for text, _ in drawn]
    assert names[1] == (names[0] + 1) % len(templates) and names[2] == (names[0] + 2) % len(templates)
    assert len({seed for _, seed in drawn}) == 3
    assert stage.instruction(s, subj, 1) == drawn[1]  # the same attempt, the same draw


def test_a_run_repairs_deterministically_and_status_counts(small_cfg, tmp_path, stand_in):
    cfg = _cfg(small_cfg, 2)
    finals = []
    for name in ("a", "b"):
        paths = RunPaths(tmp_path / name)
        outcomes = run_local(cfg, paths, make_plan(cfg, paths, cfg.stages.order))
        assert all(o.status == "done" for o in outcomes)
        finals.append({p.name: p.read_bytes() for p in sorted(paths.final_dir.glob("shard-*.tar"))})
    assert finals[0] == finals[1] and finals[0]  # same config, same bytes
    paths = RunPaths(tmp_path / "a")
    markers = [json.loads(paths.stage_done("idcheck", shard).read_text()) for shard in range(cfg.num_shards)]
    total = {k: sum(m["identity_repair"][k] for m in markers) for k in ("first_try", "repaired", "dropped")}
    assert total["repaired"] > 0 and total["first_try"] > 0
    assert total["dropped"] == sum(sum(m["rejected_subjects"].values()) for m in markers)
    stats = json.loads(paths.final_stats(0).read_text())
    assert stats["stages"]["idcheck"]["identity_repair"] == markers[0]["identity_repair"]
    (tmp_path / "a" / "run.yaml").write_text(json.dumps(cfg.model_dump(mode="json")))  # what status reads
    rows = collect_status(cfg, paths)
    row = next(r for r in rows if r.stage == "idcheck")
    assert dict(row.identity_repair) == total and row.to_dict()["identity_repair"] == total
    text = render_status(cfg, paths, rows)
    line = f"idcheck: identities first try {total['first_try']}, repaired {total['repaired']}, dropped {total['dropped']}"
    assert line in text
    report = build_report(tmp_path / "a", depth_samples=0)
    assert next(r for r in report["funnel"] if r["stage"] == "idcheck")["identity_repair"] == total


def test_a_simulated_repose_repairs_with_a_model_free_check(small_cfg):
    """Simulated GPU stages load no model: repose's borrowed check is swapped too."""
    from datagen.pipeline.preflight import build_stage

    cfg = _cfg(small_cfg, 2)
    cfg.simulate.enabled = True
    cfg.stages.repose.exec.gpus = 1
    cfg.stages.idcheck = cfg.stages.idcheck.with_backend("transformers")
    stage = build_stage("repose", cfg)
    assert stage.inner.checker.cfg.backend == "histogram"
    assert build_stage("repose", _cfg(small_cfg, 0)).checker is None
