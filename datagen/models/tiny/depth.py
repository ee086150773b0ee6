"""Tiny random-weight depth models for tests and `datagen tiny-models`: MoGe-2 and a metric
Depth Anything, built offline from a fixed seed in the layout their loaders read.

Outputs are meaningless; file layouts, configs and every line of loading and inference code
are the real ones.
"""

from __future__ import annotations

from pathlib import Path

from datagen.models.hub import require

# MoGe-2's decoder layout (configs/train/v2.json of microsoft/MoGe) at toy widths: five
# levels, the first fed by the encoder, each later one 2x the resolution of the one before.
_WIDTHS = [32, 16, 16, 8, 8]
_RESAMPLERS = ["conv_transpose", "conv_transpose", "conv_transpose", "bilinear"]


def _conv_stack(dim_in: list, dim_out: list) -> dict:
    return {
        "dim_in": dim_in,
        "dim_out": dim_out,
        "dim_res_blocks": _WIDTHS,
        "num_res_blocks": [0, 1, 1, 1, 0],
        "res_block_in_norm": "none",
        "res_block_hidden_norm": "none",
        "resamplers": _RESAMPLERS,
    }


def tiny_moge2_config() -> dict:
    """A MoGe-2 model_config: the smallest DINOv2 (ViT-S/14, whose size the config cannot
    change), narrow neck and heads, and few tokens so a 64x48 image runs in a blink."""
    return {
        "encoder": {"backbone": "dinov2_vits14", "intermediate_layers": 4, "dim_out": _WIDTHS[0]},
        # The neck adds 2 uv channels at every level (the encoder's features + uv at level 0).
        "neck": _conv_stack([_WIDTHS[0] + 2, 2, 2, 2, 2], None),
        "points_head": _conv_stack(_WIDTHS, [None, None, None, None, 3]),
        "normal_head": _conv_stack(_WIDTHS, [None, None, None, None, 3]),
        "mask_head": _conv_stack(_WIDTHS, [None, None, None, None, 1]),
        "scale_head": {"dims": [384, 32, 1]},  # from ViT-S's 384-wide class token
        "remap_output": "exp",
        "num_tokens_range": [16, 64],
    }


def build_tiny_moge(out: Path) -> None:
    """out/model.pt = {'model_config', 'model'}, tensors only, as the MoGe hub repos ship it."""
    torch = require("torch", "moge")
    model_cls = require("moge.model.v2", "moge").MoGeModel
    config = tiny_moge2_config()
    torch.manual_seed(0)
    net = model_cls(**config)
    # fp16 halves the file (ViT-S alone is 22M weights); loading casts back to the model's dtype.
    weights = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model_config": config, "model": weights}, out / "model.pt")


def build_tiny_depth_anything(out: Path) -> None:
    """A metric Depth Anything (DINOv2 backbone, DPT-style neck) with its image processor."""
    torch = require("torch", "perception")
    tf = require("transformers", "perception")
    backbone = tf.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=56,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = tf.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="metric",
        max_depth=20,  # Depth Anything V2's indoor metric models
        # Wider than the default 0.02 so random weights give depth that varies over the image.
        initializer_range=0.15,
    )
    torch.manual_seed(0)
    tf.DepthAnythingForDepthEstimation(config).save_pretrained(out)
    # Depth Anything V2's preprocessing (keep aspect, multiple of 14, ImageNet statistics) at
    # 70 pixels instead of 518.
    tf.DPTImageProcessor(
        do_resize=True,
        size={"height": 70, "width": 70},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,
        do_pad=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(out)
