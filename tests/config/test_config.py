from pathlib import Path

import pytest
import yaml

from datagen.config import apply_overrides, load_config, resolve_config_path
from datagen.errors import UserError
from datagen.resources import bundled_config_dir


def test_bundled_configs_load():
    demo = load_config(bundled_config_dir() / "demo.yaml")
    assert demo.run.num_samples == 64 and demo.num_shards >= 4
    assert (demo.run.width, demo.run.height) == (512, 512)
    assert all(getattr(demo.stages, s).model_dump().get("backend") in (None, "procedural", "open3d", "rules", "histogram") for s in demo.stages.order)
    paper = load_config(bundled_config_dir() / "sigma_set27k.yaml")
    assert paper.stages.prompts.model == "Qwen/Qwen3-8B"
    assert paper.stages.t2i.model == "black-forest-labs/FLUX.1-dev"
    assert paper.stages.repose.model == "black-forest-labs/FLUX.1-Kontext-dev"
    assert paper.stages.depth.model == "Ruicheng/moge-2-vitl-normal"
    assert paper.stages.segment.detector_model == "IDEA-Research/grounding-dino-base"
    assert paper.stages.segment.sam_model == "facebook/sam-vit-huge"


def test_bundled_config_by_name():
    assert resolve_config_path("demo") == bundled_config_dir() / "demo.yaml"
    assert resolve_config_path("sigma_set27k.yaml") == bundled_config_dir() / "sigma_set27k.yaml"
    with pytest.raises(UserError, match="nope.yaml: config file not found"):
        resolve_config_path("nope.yaml")


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_file_and_key(tmp_path):
    p = _write(tmp_path, "stages:\n  t2i:\n    bakend: procedural\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert str(e.value) == f"{p}: stages.t2i.bakend: unknown key"


def test_wrong_type_names_file_and_key(tmp_path):
    p = _write(tmp_path, "run:\n  num_samples: lots\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: run.num_samples: ") and "'lots'" in str(e.value)


def test_yaml_syntax_error_has_line(tmp_path):
    p = _write(tmp_path, "run:\n  seed: [1, 2\n")
    with pytest.raises(UserError, match=r"YAML syntax error at line \d+"):
        load_config(p)


def test_set_overrides_any_key_and_parses_scalars(tmp_path):
    p = _write(tmp_path, "run:\n  seed: 1\n")
    cfg = load_config(p, ["run.seed=5", "stages.t2i.exec.concurrency=3", "output.keep_truth=true", "filters.max_box_area_frac=0.3"])
    assert cfg.run.seed == 5 and cfg.stages.t2i.exec.concurrency == 3
    assert cfg.output.keep_truth is True and cfg.filters.max_box_area_frac == 0.3


def test_set_unknown_key_names_the_flag(tmp_path):
    p = _write(tmp_path, "{}\n")
    with pytest.raises(UserError) as e:
        load_config(p, ["stages.t2i.steps_=3"])
    assert str(e.value) == "--set stages.t2i.steps_=3: stages.t2i.steps_: unknown key"
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_stage_order_is_validated(tmp_path):
    p = _write(tmp_path, yaml.safe_dump({"stages": {"order": ["prompts", "t2i", "segmnt"]}}))
    with pytest.raises(UserError, match="stages.order: unknown stage 'segmnt'"):
        load_config(p)


def test_thresholds_are_checked(tmp_path):
    p = _write(tmp_path, yaml.safe_dump({"filters": {"min_box_area_frac": 0.5, "max_box_area_frac": 0.4}}))
    with pytest.raises(UserError, match="min_box_area_frac must not exceed"):
        load_config(p)


def test_recipe_hash_ignores_execution_settings(demo_cfg):
    other = demo_cfg.model_copy(deep=True)
    other.stages.t2i.exec.concurrency = 5
    other.run.num_samples = 1000
    assert other.config_sha256() == demo_cfg.config_sha256()
    other.filters.min_subjects = 4
    assert other.config_sha256() != demo_cfg.config_sha256()


def test_stage_dependencies_are_checked_before_anything_runs(demo_cfg):
    from datagen.pipeline.preflight import validate_pipeline

    paper = demo_cfg.model_copy(deep=True)
    paper.stages.order = ["prompts", "t2i", "segment", "depth", "repose", "idcheck", "boxes", "filter"]
    validate_pipeline(paper)  # the paper's order (repose before boxes) is valid
    broken = demo_cfg.model_copy(deep=True)
    broken.stages.order = ["prompts", "t2i", "segment", "boxes", "depth", "repose", "idcheck", "filter"]
    with pytest.raises(UserError, match="stages.order: boxes needs depth before it"):
        validate_pipeline(broken)
    last = demo_cfg.model_copy(deep=True)
    last.stages.order = ["prompts", "t2i", "segment", "depth", "boxes", "filter", "repose", "idcheck"]
    with pytest.raises(UserError, match="filter"):
        validate_pipeline(last)
