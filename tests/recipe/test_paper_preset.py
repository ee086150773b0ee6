"""The paper's recipe as an exact preset (issue L, part 3): configs/sigma_set27k_paper.yaml adds no
rule to SIGMA-GEN's, every datagen rule beyond it is one flag away and named by `datagen plan`,
and a run of the preset drops samples and subjects by the paper's rules only."""

from __future__ import annotations

import json

import pytest

from datagen.config import load_config, resolve_config_path
from datagen.recipe.paper_rules import beyond_paper, paper_reason
from helpers import run_cli

PAPER = "sigma_set27k_paper"


def paper(*flags: str):
    return load_config(resolve_config_path(PAPER), list(flags))


def test_the_preset_adds_nothing_and_the_default_names_what_it_adds():
    assert beyond_paper(paper()) == []
    ours = beyond_paper(load_config(resolve_config_path("sigma_set27k")))
    for rule in ("prompts.dedup", "segment: masks cleaned", "filters.overlap=depth", "filters.min_box3d_iou_2d", "idcheck"):
        assert any(line.startswith(rule) for line in ours), rule


@pytest.mark.parametrize(
    "flag, named",
    [
        ("stages.prompts.dedup=true", "prompts.dedup"),
        ("filters.overlap=depth", "filters.overlap=depth"),
        ("filters.max_mask_overlap=0.3", "filters.max_mask_overlap=0.3"),
        ("filters.min_box3d_iou_2d=0.3", "filters.min_box3d_iou_2d"),
        ("stages.boxes.fit.method=gravity", "boxes.fit.method=gravity"),
        ("stages.segment.fill_holes_frac=0.01", "segment: masks cleaned"),
        ("filters.max_box_area_frac=0.5", "filters box area"),
        ("filters.min_subjects=1", "filters.min_subjects=1"),
        ('stages.order=["prompts","t2i","segment","depth","repose","boxes","idcheck","filter"]', "idcheck"),
    ],
)
def test_each_beyond_paper_rule_is_one_flag_away(flag, named):
    lines = beyond_paper(paper(flag))
    assert len(lines) == 1 and lines[0].startswith(named), lines


def test_plan_lists_the_rules_beyond_the_paper():
    done = run_cli("plan", "--config", PAPER, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["beyond_paper"] == []
    ours = run_cli("plan", "--config", "demo")
    assert "beyond the paper: " in ours.stdout and "  - idcheck:" in ours.stdout


def test_a_run_of_the_preset_drops_by_the_papers_rules_only(tmp_path):
    """The preset on the procedural world (its models swapped for the procedural backends, masks
    grown so they overlap): every reason a sample or subject was dropped is one of the paper's."""
    procedural = [f"stages.{s}.backend=procedural" for s in ("prompts", "t2i", "segment", "depth", "repose")]
    sets = [*procedural, "stages.segment.dilate_px=3", "run.width=256", "run.height=256", "run.shard_size=8",
            "stages.repose.identity_size=64", "stages.prompts.num_subjects=[3,10]"]  # fmt: skip
    args = ["run", "--config", PAPER, "--out", str(tmp_path / "run"), "-n", "24", "--executor", "local"]
    done = run_cli(*args, *(x for s in sets for x in ("--set", s)), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reasons = set()
    for path in (tmp_path / "run" / "final").glob("*.stats.json"):
        stats = json.loads(path.read_text())
        for field in ("rejected", "rejected_subjects"):  # {stage: {reason: count}}
            reasons |= {r for per_stage in stats[field].values() for r in per_stage}
    assert reasons, "nothing was dropped: the test would prove nothing"
    assert {r for r in reasons if not paper_reason(r)} == set()
    assert "overlap" in reasons  # the paper's overlap rule did the work depth would otherwise do
