"""Sampling scenes: subjects on the ground, a framing camera, a sun, a background.

A scene is a plain JSON-serialisable dict; rendering reads nothing else, so a scene written to
disk and read back renders to the same bytes.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import camera as cam_geom
from .meshes import footprint_radius, unit_arrays, world_box_corners
from .vocab import BACKGROUNDS, COLOURS, SHAPES, SUPPORT_TOPS, TEXTURES, background_id, subject_caption

# Projected boxes above this image fraction push the camera back (downstream keeps 1%..40%).
_MAX_BOX_FRACTION = 0.30


class WorldConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shapes: list[str] = Field(default_factory=lambda: list(SHAPES))
    colours: list[str] = Field(default_factory=lambda: list(COLOURS))
    textures: list[str] = Field(default_factory=lambda: list(TEXTURES))
    backgrounds: list[str] = Field(default_factory=lambda: list(BACKGROUNDS))  # ids or captions
    fov_deg: tuple[float, float] = (45.0, 60.0)  # horizontal field of view
    elevation_deg: tuple[float, float] = (20.0, 45.0)
    light_elevation_deg: tuple[float, float] = (35.0, 65.0)
    size_m: tuple[float, float] = (0.3, 1.2)  # subject height scale
    max_size_ratio: float = Field(1.8, ge=1.0)  # largest / smallest size within one scene
    aspect: tuple[float, float] = (0.85, 1.2)  # footprint widening relative to height
    gap_m: float = Field(0.15, ge=0.0)  # clearance between footprint circles
    # Chance that a subject is put on a flat-topped one (a mug on a table), shrunk to fit its top.
    stack_share: float = Field(0.0, ge=0.0, le=1.0)
    frame_fill: float = Field(0.92, gt=0.1, le=1.0)  # fraction of the frame the group spans
    ambient: float = Field(0.35, ge=0.0, le=1.0)
    shadows: bool = True
    identity_background: tuple[int, int, int] = (235, 235, 235)
    identity_fill: float = Field(0.7, gt=0.0, le=1.0)

    @field_validator("shapes", "colours", "textures", "backgrounds")
    @classmethod
    def _known(cls, values: list[str], info) -> list[str]:
        known = {"shapes": SHAPES, "colours": COLOURS, "textures": TEXTURES}.get(info.field_name)
        if not values:
            raise ValueError(f"{info.field_name} must not be empty")
        for v in values:
            ok = background_id(v) is not None if known is None else v in known
            if not ok:
                choices = ", ".join(known if known is not None else BACKGROUNDS)
                raise ValueError(f"unknown {info.field_name[:-1]} {v!r}; known: {choices}")
        return values

    @model_validator(mode="after")
    def _ranges(self) -> "WorldConfig":
        for name in ("fov_deg", "elevation_deg", "light_elevation_deg", "size_m", "aspect"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(lo, hi)}")
        if not all(0 <= c <= 255 for c in self.identity_background):
            raise ValueError(f"identity_background must be RGB in 0..255, got {self.identity_background}")
        if self.fov_deg[1] >= 170 or self.elevation_deg[1] >= 89:
            raise ValueError("fov_deg must stay below 170 and elevation_deg below 89")
        return self


def _sample_identities(rng: np.random.Generator, n: int, cfg: WorldConfig) -> list[tuple[str, str, str]]:
    """n distinct (shape, colour, texture) triples, so captions are unique within the scene."""
    total = len(cfg.shapes) * len(cfg.colours) * len(cfg.textures)
    if n > total:
        raise ValueError(f"cannot make {n} distinct subjects from {total} shape/colour/texture combinations")
    # Prefer distinct shapes while they last: scenes read better and grounding is less ambiguous.
    shapes = list(rng.permutation(cfg.shapes))
    chosen: list[tuple[str, str, str]] = []
    while len(chosen) < n:
        shape = shapes[len(chosen) % len(shapes)]
        triple = (shape, str(rng.choice(cfg.colours)), str(rng.choice(cfg.textures)))
        if triple not in chosen:
            chosen.append(triple)
    return [(str(s), c, t) for s, c, t in chosen]


def _place(rng: np.random.Generator, radii: np.ndarray, gap: float) -> np.ndarray:
    """Footprint centres (n, 2) in loose, staggered rows facing the -y side.

    Rows run along x and recede along +y; the smallest subjects go in front so perspective and
    occlusion do not shrink them further. Rows never overlap in y and neighbours within a row are
    separated by their radii plus the gap, so no two footprint circles intersect.
    """
    n = len(radii)
    n_rows = int(np.clip(np.round(np.sqrt(n) * rng.uniform(0.9, 1.3)), 1, n))
    counts = np.full(n_rows, n // n_rows)
    counts[n_rows - n % n_rows:] += 1  # the extra subjects go to the back rows
    order = np.argsort(radii, kind="stable")  # small first = front
    pos = np.zeros((n, 2))
    y_front, start = 0.0, 0
    for count in counts:
        members = order[start:start + count]
        start += count
        members = members[rng.permutation(count)]  # random left-to-right order within the row
        row_r = radii[members].max()
        y_centre = y_front + row_r
        x = 0.0
        xs = []
        for j, i in enumerate(members):
            if j:
                x += radii[members[j - 1]] + radii[i] + gap * rng.uniform(1.0, 2.5)
            xs.append(x)
        # Centre the row, stagger it sideways, and jitter depth within the row's slack.
        shift = -(xs[0] + xs[-1]) / 2 + rng.uniform(-0.5, 0.5) * row_r
        for i, xi in zip(members, xs):
            slack = row_r - radii[i]
            pos[i] = (xi + shift, y_centre + rng.uniform(-slack, slack))
        y_front = y_centre + row_r + gap + row_r * rng.uniform(0.3, 1.0)
    return pos - pos.mean(axis=0)


def _stack(rng: np.random.Generator, subjects: list[dict], share: float) -> None:
    """Put some subjects on others' flat tops (a mug on a table), each holding at most one.

    A stacked subject keeps its yaw, shrinks until its footprint circle fits within 80% of the
    top's narrower half-side, sits at a random point of the top where it fits whole, and records
    its holder in `on`. Scale ratios may then exceed `max_size_ratio`: a mug is smaller than a table.
    """
    used: set[int] = set()
    for i, subject in enumerate(subjects):
        if rng.uniform() >= share or i in used:
            continue
        free = [j for j, s in enumerate(subjects) if s["shape"] in SUPPORT_TOPS and j != i and j not in used]
        if not free:
            continue
        j = free[int(rng.integers(len(free)))]
        holder = subjects[j]
        used.update((i, j))
        top_half = SUPPORT_TOPS[holder["shape"]] * holder["size"] * holder["aspect"]
        subject["size"] *= min(1.0, 0.8 * top_half / subject["footprint_radius"])
        subject["footprint_radius"] = footprint_radius(subject["shape"], subject["size"], subject["aspect"])
        reach = rng.uniform(0.0, max(top_half - subject["footprint_radius"], 0.0))
        angle = rng.uniform(0, 2 * np.pi)
        top_z = float(unit_arrays(holder["shape"])[0][:, 2].max()) * holder["size"]
        x, y, z = holder["position"]
        subject["position"] = [float(x + reach * np.cos(angle)), float(y + reach * np.sin(angle)), float(z + top_z)]
        subject["on"] = j


def _box_fractions(corners: np.ndarray, back: np.ndarray, target: np.ndarray, dist: float, cam: dict, w: int, h: int):
    rot = cam_geom.look_rotation(back)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rot, target + back * dist
    uv, _ = cam_geom.project(corners.reshape(-1, 3), pose, cam)
    uv = uv.reshape(len(corners), 8, 2)
    span = uv.max(axis=1) - uv.min(axis=1)
    return span[:, 0] * span[:, 1] / (w * h)


def sample_scene(rng: np.random.Generator, n_subjects: int, width: int, height: int, cfg: WorldConfig) -> dict:
    if n_subjects < 1:
        raise ValueError("n_subjects must be at least 1")
    triples = _sample_identities(rng, n_subjects, cfg)

    lo, hi = cfg.size_m
    band_lo = rng.uniform(lo, max(lo, hi / cfg.max_size_ratio))
    band_hi = min(hi, band_lo * cfg.max_size_ratio)
    subjects = []
    for shape, colour, texture in triples:
        size = float(rng.uniform(band_lo, band_hi))
        aspect = float(rng.uniform(*cfg.aspect))
        subjects.append({
            "name": shape,
            "caption": subject_caption(shape, colour, texture),
            "shape": shape,
            "colour": colour,
            "rgb": list(COLOURS[colour]),
            "texture": texture,
            "size": size,
            "aspect": aspect,
            "yaw": float(rng.uniform(0, 2 * np.pi)),
            "footprint_radius": footprint_radius(shape, size, aspect),
        })
    radii = np.array([s["footprint_radius"] for s in subjects])
    xy = _place(rng, radii, cfg.gap_m)
    # Turn the layout to a random heading; the camera faces its front (-y) side, give or take 30 deg.
    heading = float(rng.uniform(0, 2 * np.pi))
    c, s_ = np.cos(heading), np.sin(heading)
    xy = xy @ np.array([[c, s_], [-s_, c]])
    for s, p in zip(subjects, xy):
        s["position"] = [float(p[0]), float(p[1]), 0.0]
        s["yaw"] = float((s["yaw"] + heading) % (2 * np.pi))

    fov = float(rng.uniform(*cfg.fov_deg))
    elevation = float(np.deg2rad(rng.uniform(*cfg.elevation_deg)))
    azimuth = float((heading - np.pi / 2 + np.deg2rad(rng.uniform(-30.0, 30.0))) % (2 * np.pi))
    light_el = np.deg2rad(rng.uniform(*cfg.light_elevation_deg))
    # Sun on the camera's side (within 100 degrees of azimuth), so visible faces are mostly lit.
    light_az = azimuth + np.deg2rad(rng.uniform(-100.0, 100.0))
    light_dir = cam_geom.look_direction(float(light_az), float(light_el))
    bg_key = background_id(str(rng.choice(cfg.backgrounds)))
    # Stacking draws last, so a scene without it keeps every number it had before it existed.
    if cfg.stack_share > 0 and n_subjects > 1:
        _stack(rng, subjects, cfg.stack_share)

    intr = cam_geom.intrinsics(width, height, fov)
    tan_x = width / 2 / intr["fx"] * cfg.frame_fill
    tan_y = height / 2 / intr["fy"] * cfg.frame_fill

    corners = np.stack([world_box_corners(s) for s in subjects])
    back = cam_geom.look_direction(azimuth, elevation)
    target, dist = cam_geom.frame_points(corners.reshape(-1, 3), corners.reshape(-1, 3).mean(0), back, tan_x, tan_y)
    # Few subjects filling the frame would each be huge: back off until none exceeds the cap.
    for _ in range(20):
        biggest = _box_fractions(corners, back, target, dist, intr, width, height).max()
        if biggest <= _MAX_BOX_FRACTION:
            break
        dist *= float(np.sqrt(biggest / _MAX_BOX_FRACTION)) * 1.02
    rot = cam_geom.look_rotation(back)
    position = target + back * dist

    bg = BACKGROUNDS[bg_key]
    return {
        "width": int(width),
        "height": int(height),
        "camera": {
            **intr,
            "fov_deg": fov,
            "elevation_deg": float(np.rad2deg(elevation)),
            "azimuth_deg": float(np.rad2deg(azimuth)),
            "distance": float(dist),
            "target": [float(x) for x in target],
            "position": [float(x) for x in position],
            "cam_to_world": cam_geom.pose_matrix(rot, position),
        },
        "light": {"direction": [float(x) for x in light_dir], "ambient": float(cfg.ambient), "shadows": bool(cfg.shadows)},
        "background": {
            "id": bg_key,
            "caption": bg["caption"],
            "preposition": bg["preposition"],
            "ground_colour": list(bg["ground_colour"]),
            "ground_texture": bg["ground_texture"],
            "sky_top": list(bg["sky_top"]),
            "sky_bottom": list(bg["sky_bottom"]),
        },
        "subjects": subjects,
    }


def scene_prompt(scene: dict) -> dict:
    """Full caption of the scene and the background phrase alone."""
    captions = [s["caption"] for s in scene["subjects"]]
    listed = captions[0] if len(captions) == 1 else ", ".join(captions[:-1]) + " and " + captions[-1]
    bg = scene["background"]
    return {"full": f"A photo of {listed} {bg['preposition']} {bg['caption']}.", "background": bg["caption"]}
