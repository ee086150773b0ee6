"""The cost model of a run: how many samples and subjects reach each stage, and what they cost.

From each stage's `cost:` (seconds per sample and per subject on one whole GPU, or one CPU
worker for a CPU stage, and expected reject rates) and the stage order, `expected_flow` gives
per stage the samples and subjects in and out, the worker-seconds and the bytes written. With
`filters.apply: last` the rejects of every stage but the last are only applied at the last.
`measured_costs` reads the same figures back from a finished run's stats, so `datagen plan`
and pool balancing can use measurements instead of estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datagen.config import CostConfig, RunConfig, load_config
from datagen.errors import UserError
from datagen.pipeline.markers import stats_markers
from datagen.store.paths import RunPaths

# Rough bytes per output sample where no run measured them: PNG keeps about half of a
# photo's raw bytes, JPEG (quality 95, no chroma subsampling) about a fifth; masks compress
# ~50x; depth is 16-bit log depth PNG (FORMAT.md, sigma-set/2), which keeps about a sixth of
# its 2 bytes per pixel on a model's noisy depth (bench/results/storage.json).
PNG_RATIO = 0.5
JPG_RATIO = 0.2
MASK_RATIO = 0.02
DEPTH_BYTES_PER_PIXEL = 2 * 0.17
JSON_BYTES = 2000


@dataclass
class Measured:
    costs: dict[str, CostConfig]
    mean_subjects: float | None
    bytes_per_sample: dict[str, float]  # per sample out


@dataclass
class StageFlow:
    stage: str
    gpus: float  # per worker; 0 for a CPU stage
    samples_in: float
    samples_out: float
    subjects_in: float
    subjects_out: float
    seconds: float  # GPU-seconds (whole GPUs) for a GPU stage, CPU worker-seconds otherwise
    bytes_out: float
    source: str  # of the cost and rates: "estimate" or what measured them

    @property
    def gpu_seconds(self) -> float:
        return self.seconds if self.gpus > 0 else 0.0


def mean_requested_subjects(cfg: RunConfig) -> float:
    if cfg.source is not None:  # an ingest run: the paper's sources hold one or two subjects
        return 1.5
    lo, hi = cfg.stages.prompts.num_subjects  # drawn uniformly (stages/prompts.py)
    return (lo + hi) / 2


def estimated_bytes_per_sample(cfg: RunConfig, stage: str, subjects: float) -> float:
    """What one sample leaving `stage` adds to the run directory (intermediate shards store
    only the arrays a stage adds; the final shard holds everything)."""
    w, h = cfg.run.width, cfg.run.height
    ident = cfg.stages.repose.identity_size ** 2 * 3 * PNG_RATIO
    image, depth, mask = w * h * 3 * PNG_RATIO, w * h * DEPTH_BYTES_PER_PIXEL, w * h * MASK_RATIO
    target = w * h * 3 * (JPG_RATIO if cfg.output.image_format == "jpg" else PNG_RATIO)
    added = {
        "prompts": 0.0,
        "t2i": image,
        "source": image,  # an ingest run: the dataset's image (and its masks, identities)
        "caption": 0.0,
        "segment": subjects * mask,
        "depth": depth,
        "boxes": 0.0,
        "repose": subjects * ident,
        "idcheck": 0.0,
        # sigma-set/2: target, depth.png, one instance map for all masks, the stacked identities
        "filter": target + depth + mask + subjects * ident,
    }
    return JSON_BYTES + added[stage]


def expected_flow(cfg: RunConfig, num_samples: int, measured: Measured | None = None) -> list[StageFlow]:
    """Expected samples, subjects, seconds and bytes per stage, in the configured order;
    `measured` (a previous run's figures) overrides the config's estimates stage by stage."""
    costs = measured.costs if measured else {}
    mean_subjects = measured.mean_subjects if measured else None
    measured_bytes = measured.bytes_per_sample if measured else {}
    order = cfg.stages.order
    last = order[-1]
    samples, subjects = float(num_samples), 0.0
    deferred_keep_samples, deferred_keep_subjects = 1.0, 1.0
    flows = []
    for name in order:
        stage_cfg = cfg.stages.stage(name)
        cost = costs.get(name, stage_cfg.cost)
        seconds = cost.seconds(samples, subjects)
        keep_samples, keep_subjects = 1 - cost.sample_reject, 1 - cost.subject_drop
        if cfg.filters.apply == "last" and name != last:
            deferred_keep_samples *= keep_samples
            deferred_keep_subjects *= keep_subjects
            keep_samples = keep_subjects = 1.0
        elif name == last:
            keep_samples *= deferred_keep_samples
            keep_subjects *= deferred_keep_subjects
        out_samples = samples * keep_samples
        if name == order[0]:
            out_subjects = out_samples * (mean_subjects or mean_requested_subjects(cfg)) * keep_subjects
        else:
            out_subjects = subjects * keep_samples * keep_subjects
        per_sample_subjects = out_subjects / out_samples if out_samples else 0.0
        flows.append(
            StageFlow(
                stage=name,
                gpus=stage_cfg.exec.gpus,
                samples_in=samples,
                samples_out=out_samples,
                subjects_in=subjects,
                subjects_out=out_subjects,
                seconds=seconds,
                bytes_out=out_samples * measured_bytes.get(name, estimated_bytes_per_sample(cfg, name, per_sample_subjects)),
                source=cost.source,
            )
        )
        samples, subjects = out_samples, out_subjects
    return flows


def gpu_seconds_per_kept(flows: list[StageFlow]) -> float:
    kept = flows[-1].samples_out
    return sum(f.gpu_seconds for f in flows) / kept if kept else float("inf")


# --- measured ------------------------------------------------------------------------------


def measured_costs(run_dir: Path, cfg: RunConfig) -> Measured:
    """A finished run's per-stage figures as a cost model for `cfg`'s stages.

    Seconds are wall time of the stage's worker per shard (model time and I/O), in GPU-seconds
    for GPU stages (times the worker's GPU share; a simulated run's time scale divided out).
    Where the config splits a cost between samples and subjects, the split is kept and scaled.
    """
    paths = RunPaths(run_dir)
    stats = stats_markers(paths)
    if not stats:
        raise UserError(f"{run_dir}: no final shard stats to measure costs from (is it a finished run?)")
    run_cfg_path = paths.root / "run.yaml"
    measured_cfg = load_config(run_cfg_path) if run_cfg_path.is_file() else cfg
    totals: dict[str, dict[str, float]] = {}
    for path, marker in stats:
        flow = (marker or {}).get("stages")
        if not isinstance(flow, dict):
            raise UserError(f"{path}: unreadable stats (no per-stage figures); rerun or pick another run")
        for stage, figures in flow.items():
            t = totals.setdefault(stage, {})
            for k, v in figures.items():
                if isinstance(v, (int, float)):  # counts and seconds; not idcheck's identity_repair breakdown
                    t[k] = t.get(k, 0.0) + float(v)
    costs: dict[str, CostConfig] = {}
    bytes_per_sample: dict[str, float] = {}
    scale = measured_cfg.simulate.time_scale if measured_cfg.simulate.enabled else 1.0
    label = f"measured: {run_dir.name}"
    mean_subjects = None
    for stage in cfg.stages.order:
        t = totals.get(stage)
        if not t or not t.get("samples_in"):
            continue
        configured = cfg.stages.stage(stage).cost
        gpus = measured_cfg.stages.stage(stage).exec.gpus if stage in measured_cfg.stages.order else 0.0
        seconds = t["wall_s"] * (gpus if gpus > 0 else 1.0) / scale
        predicted = configured.seconds(t["samples_in"], t.get("subjects_in", 0.0))
        if predicted > 0:
            factor = seconds / predicted
            per_sample, per_subject = configured.s_per_sample * factor, configured.s_per_subject * factor
        else:
            per_sample, per_subject = seconds / t["samples_in"], 0.0
        kept = t.get("samples_out", 0.0) / t["samples_in"]
        subjects_kept_samples = t.get("subjects_in", 0.0) * kept
        subject_drop = 1 - t.get("subjects_out", 0.0) / subjects_kept_samples if subjects_kept_samples else 0.0
        costs[stage] = CostConfig(
            s_per_sample=per_sample,
            s_per_subject=per_subject,
            sample_reject=min(1.0, max(0.0, 1 - kept)),
            subject_drop=min(1.0, max(0.0, subject_drop)),
            source=label,
        )
        if t.get("samples_out"):
            bytes_per_sample[stage] = t.get("size", 0.0) / t["samples_out"]
            if stage == cfg.stages.order[0]:
                mean_subjects = t.get("subjects_out", 0.0) / t["samples_out"]
    return Measured(costs, mean_subjects, bytes_per_sample)
