"""Which of a run's rules go beyond SIGMA-GEN's recipe (../shared/docs/RECIPE.md), so `datagen
plan` and the dataset card can say so, and an ablation against the paper is one flag per rule.
configs/sigma_set27k_paper.yaml is the paper's recipe exactly: `beyond_paper` lists nothing for it.

The paper's rules: Grounded-SAM masks; a box smaller than 1% or larger than 40% of the image is
dropped; of overlapping masks one is kept; more than 2 subjects; MoGe-2 depth; a visible-surface
oriented 3D box per subject; one FLUX.1 Kontext edit per identity. Every sample-drop reason those
rules can give is in PAPER_REASONS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datagen.config import RunConfig

# Reasons a sample or subject may be dropped under the paper's rules alone: its filters (box area,
# overlap, subject count), a caption that grounds nothing, a box the fit cannot make or that lies
# behind the camera (sigma-set's invariant), and an LLM answer that fails validation.
PAPER_REASONS = frozenset({
    "too_few_subjects", "too_many_subjects", "box_area_small", "box_area_large", "box_too_small", "box_too_large",
    "overlap", "not_grounded", "same_object", "empty_mask", "box3d_no_valid_depth", "box3d_too_few_points",
    "box3d_flat", "box3d_degenerate", "box3d_behind_camera",
})  # fmt: skip
PAPER_REASON_PREFIXES = ("invalid_llm_output:",)


def paper_reason(reason: str) -> bool:
    """Whether the paper's rules alone can give this drop reason."""
    return reason in PAPER_REASONS or reason.startswith(PAPER_REASON_PREFIXES)


def beyond_paper(cfg: RunConfig) -> list[str]:
    """One line per rule of `cfg` that the paper does not have (empty for the paper preset)."""
    out: list[str] = []
    order, f, st = cfg.stages.order, cfg.filters, cfg.stages
    if "prompts" in order and st.prompts.dedup:
        out.append("prompts.dedup: a sample whose normalised prompt a lower index has is dropped")
    if "segment" in order and st.segment.backend != "procedural":
        if st.segment.fill_holes_frac > 0 or st.segment.min_island_frac > 0:
            out.append("segment: masks cleaned (fill_holes_frac, min_island_frac: pin holes filled, specks dropped)")
    if f.overlap == "depth":
        out.append("filters.overlap=depth: overlaps go to the nearer subject, one left with less than "
                   f"{f.min_exclusive_share:g} of its mask dropped (paper: of overlapping masks one is kept)")  # fmt: skip
    elif f.max_mask_overlap > 0:
        out.append(f"filters.max_mask_overlap={f.max_mask_overlap:g}: masks may overlap that much (paper: any overlap keeps one)")
    if "boxes" in order:
        if f.min_box3d_iou_2d > 0 or f.box3d_margin_frac < 1:
            out.append("filters.min_box3d_iou_2d / box3d_margin_frac: a 3D box whose projection misses its subject or "
                       "leaves the image is dropped")  # fmt: skip
        if st.boxes.fit.method != "pca":
            out.append(f"boxes.fit.method={st.boxes.fit.method}: boxes fitted beyond the visible surface (paper: pca)")
    if "idcheck" in order:
        out.append("idcheck: an identity image too unlike (or a copy of) its subject is dropped")
    if "repose" in order and st.repose.retries > 0:
        out.append(f"repose.retries={st.repose.retries}: an identity idcheck would drop is edited again")
    if (f.min_box_area_frac, f.max_box_area_frac) != (0.01, 0.40):
        out.append(f"filters box area {f.min_box_area_frac:g}-{f.max_box_area_frac:g} of the image (paper: 0.01-0.4)")
    if f.min_subjects != 3:
        out.append(f"filters.min_subjects={f.min_subjects} (paper: more than 2)")
    return out
