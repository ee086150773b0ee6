"""A tiny random-weight Grounded-SAM stack for the gsam backend's tests and tiny runs.

Built from the real classes (groundingdino-py's GroundingDINO, segment-anything's Sam) and
written in the files the real stack ships as, so `load_gsam` reads them through the code that
reads the published checkpoints. What can shrink does: one encoder and one decoder layer, few
queries, a 1-layer BERT with a WordPiece vocabulary trained here, a 2-block SAM image encoder.
What cannot stays: groundingdino builds only named Swin backbones (Swin-T is the smallest,
~28M weights) and its text path assumes hidden_dim 256; SAM's prompt encoder and mask decoder
have one size. Floating weights are stored as float16 to halve the files; loading casts them
back into the fp32 models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datagen.models.hub import require
from datagen.models.tiny.perception import bert_tokenizer

DINO_CONFIG = "GroundingDINO_tiny.py"
DINO_CHECKPOINT = "groundingdino_tiny.pth"
BERT_DIR = "bert"
SAM_CHECKPOINT = "sam_tiny.pth"
# GSAMConfig.sam_encoder for SAM_CHECKPOINT.
SAM_ENCODER = {"embed_dim": 16, "depth": 2, "num_heads": 2, "global_attn_indexes": [1]}

# Overrides of the packaged GroundingDINO_SwinT_OGC.py: everything that may shrink.
DINO_OVERRIDES = {
    "enc_layers": 1,
    "dec_layers": 1,
    "dim_feedforward": 32,
    "num_queries": 20,
    "use_checkpoint": False,
    "use_transformer_ckpt": False,
    "text_encoder_type": BERT_DIR,  # informational: load_gsam sets it from gsam.text_encoder
}

def _write_config(out: Path) -> None:
    """The packaged SwinT OGC config with DINO_OVERRIDES, as a plain `name = value` Python file."""
    import groundingdino
    from groundingdino.util.slconfig import SLConfig

    from datagen.models.gsam import PACKAGED_CONFIG

    packaged = Path(groundingdino.__file__).parent / "config" / PACKAGED_CONFIG
    values = {**SLConfig.fromfile(str(packaged))._cfg_dict.to_dict(), **DINO_OVERRIDES}
    lines = ["# Tiny random-weight Grounding DINO (datagen.models.tiny.gsam); read by groundingdino's SLConfig."]
    lines += [f"{k} = {v!r}" for k, v in values.items()]
    (out / DINO_CONFIG).write_text("\n".join(lines) + "\n")


def _write_bert(out: Path) -> None:
    """A 1-layer BERT and the tiny WordPiece tokenizer, saved as from the hub."""
    torch = require("torch", "gsam")
    from transformers import BertConfig, BertModel

    tok = bert_tokenizer()
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
        )
    )
    bert.save_pretrained(out / BERT_DIR)
    tok.save_pretrained(out / BERT_DIR)


def _half(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def _write_dino(out: Path) -> None:
    torch = require("torch", "gsam")
    from datagen.config import GSAMConfig
    from datagen.models.gsam import build_grounding_dino

    torch.manual_seed(0)
    g = GSAMConfig(config_file=str(out / DINO_CONFIG), text_encoder=str(out / BERT_DIR))
    model = build_grounding_dino(g, None)
    torch.save({"model": _half(model.state_dict())}, out / DINO_CHECKPOINT)


def _write_sam(out: Path) -> None:
    torch = require("torch", "gsam")
    require("segment_anything", "gsam")
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(0)
    e = SAM_ENCODER
    sam = _build_sam(e["embed_dim"], e["depth"], e["num_heads"], e["global_attn_indexes"], checkpoint=None)
    torch.save(_half(sam.state_dict()), out / SAM_CHECKPOINT)


def build_tiny_gsam(out: Path) -> None:
    """Write the tiny stack under `out` (see the module docstring); seeded, so reproducible."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_config(out)
    _write_bert(out)
    _write_dino(out)
    _write_sam(out)
