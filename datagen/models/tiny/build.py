"""`datagen tiny-models DIR`: tiny random-weight copies of every real model datagen loads.

Each is saved with `save_pretrained` under DIR/<model id> (e.g. DIR/Qwen/Qwen3-8B), so a
config that keeps the real ids and sets `models_dir: DIR` loads them through the very code
path that loads the real weights. Built offline: tokenizers are trained in code with the
`tokenizers` library, weights are drawn from a fixed seed. Outputs are meaningless; shapes,
dtypes, file layouts and every line of loading and calling code are the real ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from datagen.config import DEFAULT_DEPTH_MODELS
from datagen.models.tiny import depth as tiny_depth
from datagen.models.tiny import eval_models as tiny_eval
from datagen.models.tiny import gsam as tiny_gsam
from datagen.models.tiny import perception as tiny_perception
from datagen.models.tiny import vlm as tiny_vlm
from datagen.models.hub import require

QWEN3 = "Qwen/Qwen3-8B"
FLUX_DEV = "black-forest-labs/FLUX.1-dev"
FLUX_KONTEXT = "black-forest-labs/FLUX.1-Kontext-dev"

# Text the tiny tokenizers learn their merges from: enough English and JSON to make tokens
# longer than a byte, so generation lengths look like a real model's.
_CORPUS = [
    '{"prompt": "A photo of a red ceramic mug, a green apple and a wooden chair in a sunny kitchen.",',
    ' "background": "a sunny kitchen", "subjects": [{"name": "mug", "caption": "a red ceramic mug"},',
    ' {"name": "apple", "caption": "a green apple"}, {"name": "chair", "caption": "a wooden chair"}]}',
    "Write one scene with subjects against a background. Each subject has a short name and a caption.",
    "the a of and on in with at by next to under beside behind small large old new bright dark",
    "cat dog car lamp book plant vase bottle cup table bag hat shoe ball toy robot bicycle guitar",
]
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
# Qwen3's chat template for what datagen uses: system/user turns, generation prompt, and the
# empty think block it writes when thinking is off.
_QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def _byte_level_bpe(vocab_size: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok


def build_qwen3(out: Path) -> None:
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")

    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(512, _QWEN_SPECIALS),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=4096,
    )
    tok.chat_template = _QWEN_CHAT_TEMPLATE
    torch.manual_seed(0)
    config = transformers.Qwen3Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    model = transformers.Qwen3ForCausalLM(config)
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id, do_sample=True, temperature=0.7, top_p=0.8
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _clip_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    # CLIP's BPE marks word ends with "</w>"; train one the same way so its merges apply.
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator([line.lower() for line in _CORPUS] * 4, trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return CLIPTokenizer(vocab=state["vocab"], merges=merges, model_max_length=77)


def _t5_tokenizer():
    from tokenizers import Tokenizer, models, trainers
    from tokenizers import pre_tokenizers as pt
    from transformers import T5Tokenizer

    # A Unigram model: T5's tokenizer only round-trips through save/load from one (ENVIRONMENT.md).
    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pt.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    uni.train_from_iterator(_CORPUS * 4, trainer)
    vocab = [(piece, float(score)) for piece, score in json.loads(uni.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def _flux_parts(torch) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tok, t5_tok = _clip_tokenizer(), _t5_tokenizer()
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tok),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=clip_tok.bos_token_id,
            eos_token_id=clip_tok.eos_token_id,
            pad_token_id=clip_tok.pad_token_id,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tok),
            d_model=32,
            d_ff=37,
            d_kv=8,
            num_layers=1,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            pad_token_id=t5_tok.pad_token_id,
            eos_token_id=t5_tok.eos_token_id,
            decoder_start_token_id=t5_tok.pad_token_id,
        )
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": clip,
        "tokenizer": clip_tok,
        "text_encoder_2": t5,
        "tokenizer_2": t5_tok,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
    }


def build_flux(out: Path) -> None:
    torch = require("torch", "diffusion")
    from diffusers import FluxPipeline

    FluxPipeline(**_flux_parts(torch)).save_pretrained(out)


def build_flux_kontext(out: Path) -> None:
    torch = require("torch", "diffusion")
    from diffusers import FluxKontextPipeline

    FluxKontextPipeline(**_flux_parts(torch), image_encoder=None, feature_extractor=None).save_pretrained(out)


BUILDERS: dict[str, Callable[[Path], None]] = {
    QWEN3: build_qwen3,
    tiny_vlm.QWEN25_VL: tiny_vlm.build_qwen25_vl,  # `datagen ingest`'s caption stage
    FLUX_DEV: build_flux,
    FLUX_KONTEXT: build_flux_kontext,
    tiny_perception.GROUNDING_DINO: tiny_perception.build_grounding_dino,
    tiny_perception.SAM: tiny_perception.build_sam,
    tiny_perception.SAM2: tiny_perception.build_sam2,
    tiny_perception.DINOV2: tiny_perception.build_dinov2,
    DEFAULT_DEPTH_MODELS["moge"]: tiny_depth.build_tiny_moge,
    DEFAULT_DEPTH_MODELS["transformers"]: tiny_depth.build_tiny_depth_anything,
    # Not a hub id: groundingdino-py and segment-anything load checkpoint files (stages.segment.gsam).
    "gsam/tiny": tiny_gsam.build_tiny_gsam,
    # `datagen eval`'s metric models.
    tiny_eval.SIGLIP: tiny_eval.build_siglip,
    tiny_eval.CLIP: lambda out: tiny_eval.build_clip(out, _clip_tokenizer()),
    # Not a model folder: MUSIQ's id is pyiqa's checkpoint file, written into its folder.
    tiny_eval.MUSIQ_DIR: tiny_eval.build_musiq,
}


def build_tiny_models(root: Path, only: list[str] | None = None, say: Callable[[str], None] = print) -> dict[str, Path]:
    """Build each tiny model under root/<model id>; returns id -> directory."""
    built = {}
    for model_id, build in BUILDERS.items():
        if only and model_id not in only:
            continue
        start = time.perf_counter()
        out = root / model_id
        out.mkdir(parents=True, exist_ok=True)
        build(out)
        built[model_id] = out
        say(f"{model_id}: {out} ({time.perf_counter() - start:.1f} s)")
    return built
