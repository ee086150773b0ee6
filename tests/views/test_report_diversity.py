"""`datagen status RUN --report`'s diversity figures: distinct backgrounds, subject names and
prompts counted here from the final samples' json, duplicate prompts from the funnel, and the
scene seeds an LLM run draws."""

from __future__ import annotations

from collections import Counter

from helpers import final_metas, run_cli

from datagen.config import build_config
from datagen.recipe import scene_lists
from datagen.recipe.diversity import normalise_prompt
from datagen.views.report import SampleFigures, _diversity_section, build_report
from datagen.views.report_markdown import render_markdown, report_summary
from datagen.views.status import StageStatus


def test_diversity_counts_the_final_samples(finished_run, tmp_path):
    report = build_report(finished_run, depth_samples=0)
    d, metas = report["diversity"], final_metas(finished_run)
    backgrounds = Counter(m["prompt"]["background"].lower() for m in metas)
    names = {s["name"].lower() for m in metas for s in m["subjects"]}
    assert d["samples"] == d["backgrounds"] == d["prompts"] == len(metas) == report["kept"] > 0
    assert d["distinct_backgrounds"] == len(backgrounds) > 1
    assert d["top_backgrounds"][0][1] == max(backgrounds.values())
    assert d["distinct_subject_names"] == len(names) > 1
    assert d["subject_names"] == report["subjects"]["subjects_kept"]
    assert d["distinct_prompts"] == len({normalise_prompt(m["prompt"]["full"]) for m in metas})
    rejected = sum(r["rejected"].get("duplicate_prompt", 0) for r in report["funnel"])
    assert d["duplicate_prompts"] == {"rejected": rejected, "of": report["num_samples"], "rate": rejected / report["num_samples"]}
    assert d["scene_seeds"] is None  # the procedural backend draws from the world's vocabulary
    md = render_markdown(report)
    assert "## Diversity" in md and f"| backgrounds | {len(backgrounds)} | {len(metas)} |" in md
    assert f"{len(backgrounds)} distinct backgrounds, {len(names)} distinct subject names" in report_summary(report)
    out = tmp_path / "r"
    assert run_cli("status", str(finished_run), "--report", "--report-dir", str(out)).returncode == 0
    assert "## Diversity" in (out / "report.md").read_text()


def test_duplicates_from_every_stage_and_the_scene_seeds_of_an_llm_run():
    cfg = build_config({"run": {"num_samples": 40}, "stages": {"prompts": {"backend": "transformers"}}}, "x.yaml")
    rows = [StageStatus("prompts", samples_in=40, rejected=Counter({"duplicate_prompt": 3, "invalid_llm_output:count": 1})),
            StageStatus("t2i", samples_in=36),
            StageStatus("filter", samples_in=30, rejected=Counter({"duplicate_prompt": 1, "too_few_subjects": 2}))]
    figs = SampleFigures(subjects=[3, 3, 4], backgrounds=["x", "x", "y"], prompts=["p", "q", "p"], names=["a"] * 10)
    d = _diversity_section(cfg, figs, rows)
    assert d["duplicate_prompts"] == {"rejected": 4, "of": 40, "rate": 0.1}
    assert (d["distinct_backgrounds"], d["top_backgrounds"], d["distinct_prompts"], d["distinct_subject_names"]) == (2, [["x", 2], ["y", 1]], 2, 1)
    seeds = d["scene_seeds"]
    assert seeds["draws"] == 40 and seeds["combinations"] == len(scene_lists.THEMES) * len(scene_lists.BACKGROUNDS) * len(scene_lists.CONDITIONS)
    assert seeds["distinct"] == 40 - round(seeds["repeat_share"] * 40) and seeds["expected_repeat_share"] < 0.001
    text = "\n".join(render_markdown_lines(d))
    assert "duplicate prompts: 4 of 40 rejected (10.00%)" in text and f"drawn from {seeds['combinations']:,} combinations" in text
    # An ingest run has no prompts stage: nothing to count as duplicates, no seeds.
    assert _diversity_section(cfg.model_copy(update={"stages": cfg.stages.model_copy(update={"order": ["t2i"]})}), None, rows[1:2]) == {
        "samples": 0, "backgrounds": 0, "distinct_backgrounds": 0, "top_backgrounds": [], "subject_names": 0,
        "distinct_subject_names": 0, "prompts": 0, "distinct_prompts": 0, "duplicate_prompts": None, "scene_seeds": None}


def render_markdown_lines(d: dict) -> list[str]:
    from datagen.views.report_markdown import _diversity_lines

    return _diversity_lines(d)
