"""depth: metric depth (metres, NaN where unknown) and the pinhole camera it implies.

Backends:
- `procedural`: the renderer's depth and intrinsics, with optional relative noise.
- `moge` (datagen.models.moge): MoGe-2, which predicts metric depth, a validity mask and the
  camera (or takes the horizontal field of view `fov_x_deg` and fits the rest).
- `transformers` (datagen.models.depth_transformers): a metric depth model, Depth Anything
  V2 by default; its camera comes from `fov_x_deg` (60 degrees when unset).
The images of a batch share the run's size, so each batch is one forward pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datagen.store.inflight import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stages.base import Stage


def camera_is_usable(camera: dict) -> bool:
    """A pinhole camera that unprojects: finite values and positive focal lengths.

    MoGe fits its focal length to the predicted point map when no field of view is given; a
    degenerate map can give a negative or infinite one, and the sample is then rejected.
    """
    values = [camera[k] for k in ("fx", "fy", "cx", "cy")]
    return all(math.isfinite(v) for v in values) and camera["fx"] > 0 and camera["fy"] > 0


class DepthStage(Stage):
    name = "depth"
    requires = ("t2i",)
    backends = ("procedural", "moge", "transformers")

    model: Any = None

    def setup(self) -> None:
        if self.cfg.backend == "moge":
            from datagen.models.moge import MoGe2

            self.model = MoGe2.load(self.cfg, self.run_cfg.models_dir)
        elif self.cfg.backend == "transformers":
            from datagen.models.depth_transformers import TransformersDepth

            self.model = TransformersDepth.load(self.cfg, self.run_cfg.models_dir)

    def generation_settings(self) -> dict | None:
        c = self.cfg
        if c.backend == "procedural":
            return None
        settings = {"backend": c.backend, "model": c.model, "revision": c.revision, "dtype": c.dtype}
        if c.backend == "moge":  # fov None: MoGe estimated each image's
            precision = self.model.precision if self.model is not None else None
            return {**settings, "precision": precision, "resolution_level": c.resolution_level, "fov_x_deg": c.fov_x_deg}
        from datagen.models.depth_transformers import DEFAULT_FOV_X_DEG

        return {**settings, "fov_x_deg": c.fov_x_deg or DEFAULT_FOV_X_DEG}

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.cfg.backend == "moge":
            return self._moge(samples)
        if self.cfg.backend == "transformers":
            return self._transformers(samples)
        for s in samples:
            depth = s.array("truth_depth", self.name).astype(np.float32)
            if self.cfg.noise_std > 0:
                rng = stage_rng(s.seed, self.name)
                depth = depth * (1.0 + self.cfg.noise_std * rng.standard_normal(depth.shape)).astype(np.float32)
            s.set_array("depth", depth)
            s.meta["camera"] = {"model": "pinhole", **s.meta["truth"]["camera"]}
            s.meta["depth"] = {"units": "m", "source": "procedural"}
        return list(samples)

    def _images(self, samples: list[Sample]) -> np.ndarray:
        return np.stack([s.array("image", self.name) for s in samples])

    def _moge(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.moge import depth_and_camera

        if not samples:
            return []
        outputs = self.model.infer(self._images(samples))
        return [self._keep(s, *depth_and_camera(out)) for s, out in zip(samples, outputs, strict=True)]

    def _transformers(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.depth_transformers import DEFAULT_FOV_X_DEG, fov_camera

        if not samples:
            return []
        images = self._images(samples)
        camera = fov_camera(images.shape[2], images.shape[1], self.cfg.fov_x_deg or DEFAULT_FOV_X_DEG)
        return [self._keep(s, depth, dict(camera)) for s, depth in zip(samples, self.model.predict(images), strict=True)]

    def _keep(self, s: Sample, depth: np.ndarray, camera: dict) -> Sample | Rejected:
        if not camera_is_usable(camera):
            return self.reject(s, "depth_unusable_camera")
        s.set_array("depth", depth)
        s.meta["camera"] = camera
        s.meta["depth"] = {"units": "m", "source": self.cfg.model}
        return s
