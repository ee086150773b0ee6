"""The published model configs the GPU benchmarks build their random-weight models from (so their
compute and memory equal the real models'), trimmed to the fields that set the compute, and the toy
versions the --tiny smoke runs use: the same code paths at toy widths, checking the plumbing, not
the figures. A *_TINY dict holds only what the smoke run changes (common.toy_spec merges it).
"""

from __future__ import annotations

# ---------------------------------------------------------------- FLUX.1 (gpu_generation, gpu_train)

# black-forest-labs/FLUX.1-dev transformer/ (FLUX.1 Kontext shares it: 19 double + 38 single
# blocks, 24 heads x 128).
FLUX_TRANSFORMER = {
    "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56),
}  # fmt: skip
FLUX_TRANSFORMER_TINY = {
    "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2,
    "joint_attention_dim": 32, "pooled_projection_dim": 32, "axes_dims_rope": (4, 6, 6),
}  # fmt: skip


# ---------------------------------------------------------------- gpu_generation

# Published configs (black-forest-labs/FLUX.1-dev transformer/ and vae/, google/t5-v1_1-xxl,
# openai/clip-vit-large-patch14, Qwen/Qwen3-8B), trimmed to the fields that set the compute.
GENERATION = {
    "transformer": FLUX_TRANSFORMER,
    "vae": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 16,
        "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2,
        "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
        "act_fn": "silu", "norm_num_groups": 32, "sample_size": 1024, "use_quant_conv": False,
        "use_post_quant_conv": False, "scaling_factor": 0.3611, "shift_factor": 0.1159,
    },
    "t5": {
        "d_model": 4096, "d_ff": 10240, "num_layers": 24, "num_heads": 64, "d_kv": 64, "vocab_size": 32128,
        "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-6, "tie_word_embeddings": False,
    },
    "clip": {
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
        "projection_dim": 768,
    },
    "qwen3": {
        "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "rope_theta": 1_000_000,
        "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
    },
    # FluxPipeline's max_sequence_length and CLIP's context length.
    "t5_tokens": 512,
    "clip_tokens": 77,
}

# Same code paths, toy widths: the smoke test checks the plumbing, not the figures.
GENERATION_TINY = {
    "transformer": FLUX_TRANSFORMER_TINY,
    "vae": {
        "block_out_channels": (16, 32), "layers_per_block": 1, "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2, "norm_num_groups": 8, "sample_size": 64,
    },
    "t5": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2, "d_kv": 16, "vocab_size": 1000},
    "clip": {
        "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "max_position_embeddings": 16, "projection_dim": 32,
        "bos_token_id": 0, "eos_token_id": 1,  # CLIP's own ids lie outside a 1000-token vocabulary
    },
    "qwen3": {
        "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 512,
    },
    "t5_tokens": 16,
    "clip_tokens": 16,
}


# ---------------------------------------------------------------- gpu_perception

MOGE_HEAD = {
    "dim_in": [1024, 256, 128, 64, 32], "dim_res_blocks": [1024, 256, 128, 64, 32], "num_res_blocks": [0, 1, 1, 1, 0],
    "res_block_in_norm": "none", "res_block_hidden_norm": "none",
    "resamplers": ["conv_transpose", "conv_transpose", "conv_transpose", "bilinear"],
}
# Published configs: grounding-dino-base is GroundingDinoConfig's defaults (BERT-base text, 900
# queries, 6+6 layers) on a Swin-B backbone (transformers' convert_grounding_dino_to_hf.py);
# sam-vit-huge is SamConfig's defaults with a ViT-H image encoder; MoGe-2 ViT-L is
# microsoft/MoGe configs/train/v2.json (with its normal head: moge-2-vitl-normal, the depth
# stage's default); dinov2-base is Dinov2Config's defaults at image_size 518.
PERCEPTION = {
    "image_size": 1024,
    "crop_size": 512,
    "grounding_dino": {
        "backbone": {"image_size": 384, "embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32],
                     "window_size": 12, "out_indices": [2, 3, 4]},
        "text": {},
        "model": {},
        "processor": {},  # shortest edge 800, longest 1333
    },
    "sam": {
        "vision": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16,
                   "global_attn_indexes": [7, 15, 23, 31]},
        "prompt": {}, "decoder": {}, "processor": {},  # longest edge 1024, padded to 1024
    },
    "moge": {
        "encoder": {"backbone": "dinov2_vitl14", "intermediate_layers": [5, 11, 17, 23], "dim_out": 1024},
        "neck": {**MOGE_HEAD, "dim_in": [1026, 2, 2, 2, 2], "dim_out": None, "num_res_blocks": [0, 2, 2, 2, 0]},
        "points_head": {**MOGE_HEAD, "dim_out": [None, None, None, None, 3]},
        "normal_head": {**MOGE_HEAD, "dim_out": [None, None, None, None, 3]},
        "mask_head": {**MOGE_HEAD, "dim_out": [None, None, None, None, 1]},
        "scale_head": {"dims": [1024, 1024, 1024, 1]},
        "remap_output": "exp",
        "num_tokens_range": [1200, 3600],
    },
    "dinov2": {
        "model": {"image_size": 518},
        "processor": {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}},
    },
}

# Same code paths, toy widths (as datagen.models.tiny.perception), tiny images.
MOGE_HEAD_TINY = {**MOGE_HEAD, "dim_in": [32, 16, 16, 8, 8], "dim_res_blocks": [32, 16, 16, 8, 8]}
PERCEPTION_TINY = {
    "image_size": 128,
    "crop_size": 32,
    "grounding_dino": {
        "backbone": {"image_size": 64, "patch_size": 4, "embed_dim": 16, "depths": [1, 1, 1, 1],
                     "num_heads": [1, 1, 2, 2], "window_size": 4, "out_indices": [2, 3, 4]},
        "text": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        "model": {"d_model": 32, "encoder_layers": 1, "decoder_layers": 2, "encoder_attention_heads": 2,
                  "decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_queries": 20,
                  "encoder_n_points": 2, "decoder_n_points": 2},
        # Not smaller: the extra feature level of a 64 px input is 1x1, which GroupNorm rejects.
        "processor": {"size": {"shortest_edge": 128, "longest_edge": 192}},
    },
    "sam": {
        "vision": {"hidden_size": 32, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "image_size": 64, "patch_size": 16, "global_attn_indexes": [1], "window_size": 2, "mlp_dim": 64,
                   "num_pos_feats": 8},
        "prompt": {"hidden_size": 16, "image_size": 64, "patch_size": 16, "mask_input_channels": 4},
        "decoder": {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 32,
                    "iou_head_hidden_dim": 16},
        "processor": {"size": {"longest_edge": 64}, "pad_size": {"height": 64, "width": 64}},
    },
    "moge": {
        # The smallest backbone MoGe's encoder accepts; few tokens keep it fast on a CPU.
        "encoder": {"backbone": "dinov2_vits14", "intermediate_layers": [2, 5, 8, 11], "dim_out": 32},
        "neck": {**MOGE_HEAD_TINY, "dim_in": [34, 2, 2, 2, 2], "dim_out": None, "num_res_blocks": [0, 1, 1, 1, 0]},
        "points_head": {**MOGE_HEAD_TINY, "dim_out": [None, None, None, None, 3]},
        "normal_head": {**MOGE_HEAD_TINY, "dim_out": [None, None, None, None, 3]},
        "mask_head": {**MOGE_HEAD_TINY, "dim_out": [None, None, None, None, 1]},
        "scale_head": {"dims": [384, 32, 1]},
        "num_tokens_range": [16, 36],
    },
    "dinov2": {
        "model": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                  "image_size": 28},
        "processor": {"size": {"shortest_edge": 32}, "crop_size": {"height": 28, "width": 28}},
    },
}


# ---------------------------------------------------------------- gpu_eval

# Published configs of the eval's judges: google/siglip-so400m-patch14-384 (SigLIP-I, SigLIP-T),
# openai/clip-vit-base-patch32 (CLIP-IQA; CLIPConfig's defaults), pyiqa's MUSIQ on KonIQ (its
# architecture defaults); DINOv2 and MoGe-2 are PERCEPTION's.
EVAL = {
    "siglip": {
        "text": {"vocab_size": 32000, "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                 "num_attention_heads": 16, "max_position_embeddings": 64},
        "vision": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
                   "image_size": 384, "patch_size": 14},
        "processor": {"size": {"height": 384, "width": 384}},
        "text_tokens": 64,
    },
    "clip": {"text": {}, "vision": {}, "projection_dim": 512, "processor": {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}},
    "musiq": {},
}
EVAL_TINY = {
    "siglip": {
        "text": {"vocab_size": 200, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "max_position_embeddings": 16},
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "image_size": 32, "patch_size": 8},
        "processor": {"size": {"height": 32, "width": 32}},
        "text_tokens": 16,
    },
    "clip": {
        "text": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2},
        "vision": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "image_size": 32, "patch_size": 8},
        "projection_dim": 32,
        "processor": {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}},
    },
    "musiq": {"patch_size": 8, "hidden_size": 32, "mlp_dim": 64, "num_heads": 2, "num_layers": 1,
              "spatial_pos_grid_size": 4, "longer_side_lengths": [16, 32], "max_seq_len_from_original_res": 16},
}
