"""Tiny random-weight copies of `datagen eval`'s metric models (`datagen tiny-models`): SigLIP
and CLIP saved with `save_pretrained` together with their processors, and a MUSIQ checkpoint
file with the architecture keywords beside it, so each loads through its real `load`.

SigLIP's tokenizer is SiglipTokenizer on a sentencepiece model (spiece.model), as the hub's
checkpoints ship it; the tiny one trains a small sentencepiece model offline.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from datagen.eval.config import MetricModels
from datagen.models.hub import require
from datagen.models.iqa import MUSIQ_ARCH_FILE
from datagen.models.tiny.perception import _WORDS

_DEFAULTS = MetricModels()
SIGLIP = _DEFAULTS.siglip.model
CLIP = _DEFAULTS.clip_iqa.model
MUSIQ = _DEFAULTS.musiq.model
# MUSIQ's id names a file (pyiqa's checkpoint), not a folder: its builder fills the folder.
MUSIQ_DIR = str(PurePosixPath(MUSIQ).parent)

# Small enough to be quick on a CPU; three scales as pyiqa's default (two resized + original),
# the original capped at 16 patches whatever the image size.
TINY_MUSIQ = {
    "patch_size": 8, "hidden_size": 32, "mlp_dim": 64, "num_heads": 2, "num_layers": 1, "num_scales": 3,
    "spatial_pos_grid_size": 4, "longer_side_lengths": [16, 32], "max_seq_len_from_original_res": 16,
}  # fmt: skip


def siglip_tokenizer(model_max_length: int = 16):
    """A SiglipTokenizer, the real class, on a small sentencepiece Unigram model trained here
    (pad 0, eos 1, unk 2, no bos, as SigLIP's spiece.model)."""
    import io
    import tempfile

    spm = require("sentencepiece", "eval")
    from transformers import SiglipTokenizer

    words = list(_WORDS) + ["good", "bad", "photo"]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(words)] * 50 + words), model_writer=model, vocab_size=48,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "spiece.model"
        vocab.write_bytes(model.getvalue())
        return SiglipTokenizer(vocab_file=str(vocab), model_max_length=model_max_length)


def build_siglip(out: Path) -> None:
    torch = require("torch", "eval")
    tf = require("transformers", "eval")
    tok = siglip_tokenizer()
    torch.manual_seed(0)
    text = dict(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    tf.SiglipModel(tf.SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(out)
    images = tf.SiglipImageProcessor(size={"height": 32, "width": 32})
    tf.SiglipProcessor(image_processor=images, tokenizer=tok).save_pretrained(out)


def build_clip(out: Path, tok: Any) -> None:
    """tok: a CLIPTokenizer (tiny.build's, the one FLUX's CLIP text encoder uses)."""
    torch = require("torch", "eval")
    tf = require("transformers", "eval")
    torch.manual_seed(0)
    text = dict(
        vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2)
    tf.CLIPModel(tf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(out)
    images = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    tf.CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(out)


def build_musiq(out: Path) -> None:
    """out is the checkpoint's folder (MUSIQ_DIR under the tiny root): writes the file there."""
    torch = require("torch", "eval")
    arch = require("pyiqa.archs.musiq_arch", "eval")
    torch.manual_seed(0)
    model = arch.MUSIQ(**TINY_MUSIQ, pretrained=False)
    torch.save(model.state_dict(), out / PurePosixPath(MUSIQ).name)
    (out / MUSIQ_ARCH_FILE).write_text(json.dumps(TINY_MUSIQ, indent=2) + "\n")


__all__ = ["CLIP", "MUSIQ", "MUSIQ_DIR", "SIGLIP", "TINY_MUSIQ", "build_clip", "build_musiq", "build_siglip", "siglip_tokenizer"]
