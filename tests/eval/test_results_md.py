"""results.md puts our figures beside the paper's Table 1, per split, mode and row."""

from __future__ import annotations

from datagen.eval.paper import TABLE_1
from datagen.eval.results_md import render_results


def test_results_md_sits_beside_the_papers_table_1():
    ours = {"dino_i": 70.123, "siglip_i": 71.0, "siglip_t": 12.5, "depth_mse": 0.001, "depth_mse_8bit": 65.025,
            "clip_iqa": 50.0, "musiq": 60.0}  # fmt: skip
    results = {
        "samples": 3,
        "models": {"dino": "facebook/dinov2-base"},
        "rows": {"lora-a": {"masks_depth": {**ours, "single": ours, "multi": ours}, "boxes2d": {"single": ours}}},
    }
    text = render_results(results)
    assert "3 samples" in text and "dino `facebook/dinov2-base`" in text
    single = text.split("## Single subject")[1].split("## Multi subject")[0]
    multi = text.split("## Multi subject")[1]
    assert "| lora-a | masks_depth | 70.12 / 81.04 |" in single
    assert "65.03 / 70.20" in single  # depth on the 8-bit scale, beside the paper's 70.2
    assert "| lora-a | boxes2d | 70.12 / 79.16 |" in single and "| 50.00 / 70.82 |" in single
    assert "| lora-a | masks_depth | 70.12 / 74.54 |" in multi
    assert "| lora-a | boxes2d | - / 71.90 |" in multi  # no multi-subject figures for that mode: a dash
    assert TABLE_1["multi"]["masks_depth"]["depth_mse"] == 26.35
