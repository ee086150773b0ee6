"""depth: metric depth (metres, NaN where unknown) and the pinhole camera it implies.

Backends:
- `procedural`: the renderer's depth and intrinsics, with optional relative noise.
- `moge` (datagen.models.moge): MoGe-2, which predicts metric depth, a validity mask and the
  camera (or takes the horizontal field of view `fov_x_deg` and fits the rest).
- `transformers` (datagen.models.depth_transformers): a metric depth model, Depth Anything
  V2 by default; its camera comes from `fov_x_deg` (60 degrees when unset).
The images of a batch share the run's size, so each batch is one forward pass. When segment
came first, the masks are then made exclusive by depth order (stages.exclusive). Depth leaves
the stage as it will be stored, log16 (datagen.store.depth_png), so a resumed run and one that
hands samples over in memory see the same values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datagen.seeds import stage_rng
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.stages.exclusive import make_masks_exclusive
from datagen.store.inflight import Rejected, Sample


def camera_is_usable(camera: dict) -> bool:
    """A pinhole camera that unprojects: finite values and positive focal lengths.

    MoGe fits its focal length to the predicted point map when no field of view is given; a
    degenerate map can give a negative or infinite one, and the sample is then rejected.
    """
    values = [camera[k] for k in ("fx", "fy", "cx", "cy")]
    return all(math.isfinite(v) for v in values) and camera["fx"] > 0 and camera["fy"] > 0


class ProceduralDepth(Backend):
    """The renderer's depth and camera, with optional relative noise."""

    def estimate(self, samples: list[Sample]) -> list[Sample | Rejected]:
        name, noise_std = self.stage.name, self.cfg.noise_std
        for s in samples:
            depth = s.array("truth_depth", name).astype(np.float32)
            if noise_std > 0:
                rng = stage_rng(s.seed, name)
                s.set_array("depth", depth * (1.0 + noise_std * rng.standard_normal(depth.shape)).astype(np.float32))
            else:  # the truth's stored codes: quantised once, not again
                s.set_array("depth", s.log16.get("truth_depth", depth))
            s.meta["camera"] = {"model": "pinhole", **s.meta["truth"]["camera"]}
            s.meta["depth"] = {"units": "m", "source": "procedural"}
        return list(samples)


class ModelDepth(Backend):
    """A depth model: one forward pass per batch, the sample kept only with a usable camera."""

    model: Any = None

    def model_settings(self) -> dict:
        c = self.cfg
        return {"backend": c.backend, "model": c.model, "revision": c.revision, "dtype": c.dtype}

    def images(self, samples: list[Sample]) -> np.ndarray:
        return np.stack([s.array("image", self.stage.name) for s in samples])

    def keep(self, s: Sample, depth: np.ndarray, camera: dict) -> Sample | Rejected:
        if not camera_is_usable(camera):
            return self.stage.reject(s, "depth_unusable_camera")
        s.set_array("depth", depth)
        s.meta["camera"] = camera
        s.meta["depth"] = {"units": "m", "source": self.cfg.model}
        return s


class MoGeDepth(ModelDepth):
    """MoGe-2: depth and camera from the model (the camera fitted to `fov_x_deg` where given)."""

    def load(self) -> None:
        from datagen.models.moge import MoGe2

        self.model = MoGe2.load(self.cfg, self.stage.run_cfg.models_dir)

    def generation_settings(self) -> dict | None:
        c = self.cfg
        precision = self.model.precision if self.model is not None else None
        # fov None: MoGe estimated each image's.
        return {**self.model_settings(), "precision": precision, "resolution_level": c.resolution_level,
                "fov_x_deg": c.fov_x_deg}  # fmt: skip

    def estimate(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.moge import depth_and_camera

        if not samples:
            return []
        outputs = self.model.infer(self.images(samples))
        return [self.keep(s, *depth_and_camera(out)) for s, out in zip(samples, outputs, strict=True)]


class TransformersDepth(ModelDepth):
    """A metric depth model through transformers; the camera from `fov_x_deg`."""

    def load(self) -> None:
        from datagen.models import depth_transformers

        self.model = depth_transformers.TransformersDepth.load(self.cfg, self.stage.run_cfg.models_dir)

    def fov_x_deg(self) -> float:
        from datagen.models.depth_transformers import DEFAULT_FOV_X_DEG

        return self.cfg.fov_x_deg or DEFAULT_FOV_X_DEG

    def generation_settings(self) -> dict | None:
        return {**self.model_settings(), "fov_x_deg": self.fov_x_deg()}

    def estimate(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.depth_transformers import fov_camera

        if not samples:
            return []
        images = self.images(samples)
        camera = fov_camera(images.shape[2], images.shape[1], self.fov_x_deg())
        return [self.keep(s, depth, dict(camera)) for s, depth in zip(samples, self.model.predict(images), strict=True)]


class DepthStage(BackendStage):
    name = "depth"
    requires = ("t2i",)
    reads = ("filters",)  # exclusive masks (stages.exclusive), when segment came first
    version = 2  # masks made exclusive by depth; depth stored as log16 between stages
    backend_types = {"procedural": ProceduralDepth, "moge": MoGeDepth, "transformers": TransformersDepth}
    backends = tuple(backend_types)

    model = BackendAttribute()  # the depth model, once loaded

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        out = self.backend.estimate(samples)
        # Masks came first (every shipped order): resolve their overlaps now that depth is known.
        return [make_masks_exclusive(self, s) if isinstance(s, Sample) and "masks" in s.arrays else s for s in out]
