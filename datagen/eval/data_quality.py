"""`datagen eval data RUN --out DIR`: the dataset's own quality, with the eval's judges, so a
dataset card can state it.

Per subject: DINO-I and SigLIP-I between its identity image and its crop (box_2d) in the
target, the paper's identity metrics applied to the data itself; per image: CLIP-IQA and
MUSIQ of the target. Written: subjects.parquet, images.parquet, report.json (distributions
per subject count: mean and 10/50/90th percentiles), report.md, and bottom.png, the lowest
`bottom_k` of each distribution on one sheet (one line per metric) to look at first.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from datagen.errors import UserError
from datagen.eval.config import EvalConfig
from datagen.eval.scores import identity_scores

SUBJECT_METRICS = ("dino_i", "siglip_i")
IMAGE_METRICS = ("clip_iqa", "musiq")
THUMB = 128


def distribution(values: list[float]) -> dict[str, float | int]:
    v = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return {"n": int(v.size), "mean": float(v.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90)}


def by_count(records: list[dict], metric: str) -> dict[str, dict]:
    groups: dict[int, list[float]] = {}
    for r in records:
        groups.setdefault(r["subjects"], []).append(r[metric])
    return {"all": distribution([r[metric] for r in records]), **{str(n): distribution(v) for n, v in sorted(groups.items())}}


def _thumb(image: np.ndarray, box: list[float] | None) -> np.ndarray:
    im = Image.fromarray(image).convert("RGB")
    if box is not None:
        ImageDraw.Draw(im).rectangle([float(b) for b in box], outline=(255, 0, 0), width=max(1, im.width // 64))
    return np.asarray(im.resize((THUMB, THUMB), Image.BILINEAR))


def bottom_sheet(path: Path, lines: list[list[np.ndarray]]) -> None:
    width = max(len(line) for line in lines)
    sheet = np.full((len(lines) * THUMB, width * THUMB, 3), 255, np.uint8)
    for r, line in enumerate(lines):
        for c, thumb in enumerate(line):
            sheet[r * THUMB : (r + 1) * THUMB, c * THUMB : (c + 1) * THUMB] = thumb
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(sheet).save(tmp)
    os.replace(tmp, path)


def read_report(path: Path) -> dict[str, Any]:
    """A finished `eval data` report (DIR or DIR/report.json), checked: UserError in one line."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"--quality {path}: no readable report.json of `datagen eval data` ({e.__class__.__name__})") from None
    ok = isinstance(report, dict) and isinstance(report.get("distributions"), dict) and isinstance(report.get("models"), dict)
    if not ok or any(not isinstance(per, dict) or "all" not in per for per in report["distributions"].values()):
        raise UserError(f"--quality {file}: not a report of `datagen eval data` (no distributions per subject count)")
    return report


def render_report(report: dict[str, Any]) -> str:
    lines = ["# Dataset quality", "", f"{report['images']} images, {report['subjects']} subjects of `{report['run']}`.",
             "Models: " + ", ".join(f"{k} `{v}`" for k, v in report["models"].items()) + ".", ""]  # fmt: skip
    for metric, per in report["distributions"].items():
        lines += [f"## {metric}", "", "| subjects | n | mean | p10 | p50 | p90 |", "| --- | --- | --- | --- | --- | --- |"]
        for count, d in per.items():
            lines.append(f"| {count} | {d['n']} | {d['mean']:.2f} | {d['p10']:.2f} | {d['p50']:.2f} | {d['p90']:.2f} |")
        lines.append("")
    lines.append("bottom.png: one line per metric (" + ", ".join(report["distributions"]) + "), lowest first.")
    return "\n".join(lines) + "\n"


def eval_data(run_dir: Path, out: Path, cfg: EvalConfig, limit: int | None, say: Callable[[str], None]) -> dict:
    import pandas as pd

    from datagen.eval.judging import Judges
    from datagen.final.read import iter_final_samples

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty directory")
    samples = list(iter_final_samples(run_dir, limit))  # one-line errors for a missing or broken run
    judges = Judges.load(cfg, depth=False)
    subjects, images = [], []
    for s in samples:
        boxes = [sub["box_2d"] for sub in s.subjects]
        ids = list(s.identities)
        dino = identity_scores(judges.dino.embed, s.image, boxes, ids)
        siglip = identity_scores(judges.siglip.embed_images, s.image, boxes, ids)
        n = len(s.subjects)
        for i, sub in enumerate(s.subjects):
            subjects.append({"key": s.key, "subject": i, "name": sub.get("name"), "subjects": n, "dino_i": dino[i], "siglip_i": siglip[i]})
        iqa, musiq = judges.quality([s.image])
        images.append({"key": s.key, "subjects": n, "clip_iqa": iqa[0], "musiq": musiq[0]})
        say(f"judged {s.key}")
    distributions = {m: by_count(subjects, m) for m in SUBJECT_METRICS} | {m: by_count(images, m) for m in IMAGE_METRICS}
    m = cfg.metrics
    report = {"run": str(run_dir), "images": len(images), "subjects": len(subjects),
              "models": {"dino": m.dino.model, "siglip": m.siglip.model, "clip_iqa": m.clip_iqa.model, "musiq": m.musiq.model},
              "distributions": distributions}  # fmt: skip
    # Written beside, renamed into place: DIR holds a whole report or nothing.
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    by_key = {s.key: s for s in samples}
    lines = []
    for metric, records in [(m_, subjects) for m_ in SUBJECT_METRICS] + [(m_, images) for m_ in IMAGE_METRICS]:
        worst = sorted(records, key=lambda r: r[metric])[: cfg.bottom_k]
        lines.append([_thumb(by_key[r["key"]].image, by_key[r["key"]].subjects[r["subject"]]["box_2d"] if "subject" in r else None) for r in worst])
    bottom_sheet(tmp / "bottom.png", lines)
    pd.DataFrame(subjects).to_parquet(tmp / "subjects.parquet", index=False)
    pd.DataFrame(images).to_parquet(tmp / "images.parquet", index=False)
    (tmp / "report.md").write_text(render_report(report))
    (tmp / "report.json").write_text(json.dumps(report, indent=2))
    if out.exists():
        out.rmdir()  # empty, checked above
    os.replace(tmp, out)
    return report
