"""MoGe-2 (`dlr-moge`) for the depth stage: a checked checkpoint load, batched `infer`, and
the conversion of its output to datagen's depth map and pinhole camera.

MoGe-2 predicts a metric point map, a validity mask and intrinsics in normalised image
coordinates. Those are utils3d's uv coordinates: (0, 0) is the top-left corner of the image
and (1, 1) its bottom-right corner, so pixel (c, r) has its centre at ((c + 0.5) / W,
(r + 0.5) / H) (`utils3d.pt.uv_map`, which `infer` unprojects its depth with). datagen puts
that centre at (c + 0.5, r + 0.5) pixels (datagen.recipe.geometry), so the pixel intrinsics are the
normalised ones times W (fx, cx) and H (fy, cy), with no half-pixel shift.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from datagen.config import DepthConfig
from datagen.errors import UserError
from datagen.models.hub import load_model, pick_device, require, resolve_model

# The checkpoint file of a MoGe hub repo (what `MoGeModel.from_pretrained` downloads).
MOGE_FILE = "model.pt"
# Sections of a MoGe-2 model_config that datagen needs: geometry, metric scale, validity.
MOGE2_SECTIONS = ("encoder", "neck", "points_head", "scale_head", "mask_head")
# What torch.load raises on a file that is not a torch checkpoint (or holds more than tensors).
NOT_A_CHECKPOINT = (pickle.UnpicklingError, EOFError, KeyError, RuntimeError)


def import_moge() -> Any:
    """MoGe-2's model class, or one line naming the extra that brings it."""
    return require("moge.model.v2", "moge").MoGeModel


def checkpoint_file(model: str, revision: str | None, models_dir: str | None) -> str:
    """The model.pt of a local directory or file, else of the hub repo `model` (downloaded or cached)."""
    path = Path(resolve_model(model, models_dir)).expanduser()
    if path.is_dir():
        return str(path / MOGE_FILE)
    if path.is_file():
        return str(path)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(model, MOGE_FILE, revision=revision)


def moge2_problem(checkpoint: Any) -> str | None:
    """Why a loaded checkpoint is not a metric MoGe-2 one, or None."""
    if not isinstance(checkpoint, dict) or not {"model_config", "model"} <= checkpoint.keys():
        return "not a MoGe checkpoint (expected a dict of 'model_config' and 'model')"
    config = checkpoint["model_config"]
    if not isinstance(config, dict):
        return "not a MoGe checkpoint (its model_config is not a dict)"
    if not isinstance(config.get("encoder"), dict):
        # MoGe-1 names its backbone with a string and has one head with neither scale nor normals.
        return "a MoGe-1 checkpoint; the depth stage needs MoGe-2 (metric), e.g. Ruicheng/moge-2-vitl-normal"
    missing = [k for k in MOGE2_SECTIONS if k not in config]
    if missing:
        return f"a MoGe-2 config without {', '.join(missing)} (datagen needs metric points and a validity mask)"
    return None


def _read(model: str, file: str) -> dict:
    torch = require("torch", "moge")
    try:
        checkpoint = load_model("depth", model, lambda: torch.load(file, map_location="cpu", weights_only=True))
    except NOT_A_CHECKPOINT as e:
        raise UserError(f"stages.depth.model {model!r}: {file} is not a MoGe checkpoint (torch.load: {type(e).__name__})") from None
    problem = moge2_problem(checkpoint)
    if problem:
        raise UserError(f"stages.depth.model {model!r}: {problem}")
    return checkpoint


def _build(model_cls: Any, model: str, checkpoint: dict) -> Any:
    """What `MoGeModel.from_pretrained` does, but every weight of the model must be in the file:
    from_pretrained loads non-strictly, so a checkpoint whose tensors do not match its config
    would run on random weights without a word."""
    try:
        net = model_cls(**checkpoint["model_config"])
    except (TypeError, ValueError, AttributeError) as e:
        raise UserError(f"stages.depth.model {model!r}: MoGe-2 cannot build its model_config ({type(e).__name__}: {e})") from None
    missing = net.load_state_dict(checkpoint["model"], strict=False).missing_keys
    if missing:
        raise UserError(
            f"stages.depth.model {model!r}: the checkpoint lacks {len(missing)} weights of its own model_config (first: {missing[0]})"
        )
    return net


def precision(dtype: str, device: str) -> tuple[str, bool]:
    """(weights dtype, MoGe's fp16 autocast) for a configured dtype.

    MoGe runs in half precision two ways: its own scripts' --fp16 casts the weights, and
    `infer(use_fp16=True)` (its default) autocasts fp32 weights to fp16; 'auto' is the latter.
    The CPU runs fp32: half-precision convolutions there are slow or unsupported.
    """
    if not device.startswith("cuda") or dtype == "float32":
        return "float32", False
    if dtype == "auto":
        return "float32", True
    return dtype, False


class MoGe2:
    """A loaded MoGe-2 and the settings it runs with."""

    def __init__(self, net: Any, cfg: DepthConfig, device: str) -> None:
        self.net, self.cfg, self.device = net, cfg, device
        self.weights_dtype, self.use_fp16 = precision(cfg.dtype, device)

    @classmethod
    def load(cls, cfg: DepthConfig, models_dir: str | None) -> MoGe2:
        model_cls = import_moge()
        torch = require("torch", "moge")
        file = load_model("depth", cfg.model, lambda: checkpoint_file(cfg.model, cfg.revision, models_dir))
        net = _build(model_cls, cfg.model, _read(cfg.model, file))
        # The same attention through torch's fused kernels: MoGe's DINOv2 otherwise builds the
        # full attention matrix (GBs per batch for ViT-L at its 3600 tokens).
        net.enable_pytorch_native_sdpa()
        device = pick_device(cfg.device)
        me = cls(net, cfg, device)
        net.to(device=device, dtype=getattr(torch, me.weights_dtype)).eval()
        return me

    @property
    def precision(self) -> str:
        return "float16-autocast" if self.use_fp16 else self.weights_dtype

    def infer(self, images: np.ndarray) -> list[dict[str, np.ndarray]]:
        """MoGe-2's `infer` on (N, H, W, 3) uint8 images of one size, as one batch; per image its
        points (H, W, 3), depth (H, W), normalised intrinsics (3, 3) and mask (H, W) bool."""
        torch = require("torch", "moge")
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        with warnings.catch_warnings():
            # infer() wraps its fp32 post-processing in torch.autocast(dtype=float32), which the
            # CPU does not support and says so once per call; it runs in fp32 either way.
            warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype is not supported")
            out = self.net.infer(x, resolution_level=self.cfg.resolution_level, fov_x=self.cfg.fov_x_deg, use_fp16=self.use_fp16)
        arrays = {k: out[k].cpu().numpy() for k in ("points", "depth", "intrinsics", "mask")}
        return [{k: v[i] for k, v in arrays.items()} for i in range(len(images))]


def depth_and_camera(out: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """One image's MoGe-2 output as datagen's float32 depth in metres (NaN where MoGe's mask is
    False or its depth is not a positive number) and the pixel pinhole camera (see the module
    docstring for why the normalised intrinsics scale by W and H with no shift)."""
    depth, mask, k = out["depth"], out["mask"], np.asarray(out["intrinsics"], dtype=np.float64)
    height, width = depth.shape
    with np.errstate(invalid="ignore"):
        known = mask & np.isfinite(depth) & (depth > 0)
    camera = {
        "model": "pinhole",
        "fx": float(k[0, 0] * width),
        "fy": float(k[1, 1] * height),
        "cx": float(k[0, 2] * width),
        "cy": float(k[1, 2] * height),
    }
    return np.where(known, depth, np.nan).astype(np.float32), camera
