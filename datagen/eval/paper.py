"""SIGMA-GEN's own figures (SIGMA-GEN rows of the paper's Tables 1 and 4), put beside ours in
results.md; an eval config's `paper_table` picks the table its protocol reproduces.

Source: "SIGMA-GEN" (../shared/seeds/sigma-gen-paper.txt): Table 1 "Quantitative comparison with
baselines" (its held-out synthetic split), and Table 4 "Evaluation on DreamBooth dataset for
single subject generation" (appendix A.10, `datagen eval dreambooth`). Modes map to the Control
column: masks_depth = "Mask, Depth" (background prompts), boxes2d = "Bbox", boxes3d = "Mask, 3D
bbox" (full prompts). Depth MSE is given for masks_depth only; its scale is not stated (datagen
reports `depth_mse_8bit` beside it).
"""

from __future__ import annotations

METRICS = ("dino_i", "siglip_i", "siglip_t", "depth_mse", "clip_iqa", "musiq")
LABELS = {"dino_i": "DINO-I", "siglip_i": "SigLIP-I", "siglip_t": "SigLIP-T", "depth_mse": "Depth MSE",
          "clip_iqa": "CLIP-IQA", "musiq": "MUSIQ"}  # fmt: skip
MODES = ("masks_depth", "boxes2d", "boxes3d")
SPLITS = ("single", "multi")


def _row(dino: float, siglip: float, text: float, depth: float | None, iqa: float, musiq: float) -> dict:
    return dict(zip(METRICS, (dino, siglip, text, depth, iqa, musiq), strict=True))


TABLE_1: dict[str, dict[str, dict[str, float | None]]] = {
    "single": {
        "masks_depth": _row(81.04, 83.99, 15.91, 70.2, 70.65, 70.87),
        "boxes2d": _row(79.16, 83.70, 16.13, None, 70.82, 70.75),
        "boxes3d": _row(79.98, 84.00, 16.03, None, 70.94, 70.67),
    },
    "multi": {
        "masks_depth": _row(74.54, 77.82, 17.73, 26.35, 72.64, 73.21),
        "boxes2d": _row(71.90, 73.15, 17.21, None, 68.83, 70.96),
        "boxes3d": _row(73.48, 75.27, 18.19, None, 72.45, 72.55),
    },
}
# Table 4: DreamBooth, one subject per image (its Quality columns in Table 1's order).
TABLE_4: dict[str, dict[str, dict[str, float | None]]] = {
    "single": {
        "masks_depth": _row(82.84, 84.06, 16.27, 58.4, 71.43, 70.32),
        "boxes2d": _row(82.25, 83.19, 16.03, None, 71.50, 70.19),
        "boxes3d": _row(82.30, 83.88, 16.17, None, 71.62, 70.21),
    },
}
# paper_table -> (figures, how results.md cites them)
TABLES = {
    "table1": (TABLE_1, "SIGMA-GEN, Table 1 (SIGMA-GEN rows)"),
    "table4": (TABLE_4, "SIGMA-GEN, Table 4: DreamBooth (SIGMA-GEN rows)"),
}
