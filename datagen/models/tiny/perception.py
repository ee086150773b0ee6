"""Tiny random-weight copies of the transformers perception models (`datagen tiny-models`):
Grounding DINO with its BERT and tokenizer, SAM, SAM 2 and DINOv2, each saved with
`save_pretrained` together with its processor, so they load through the real code path."""

from __future__ import annotations

from pathlib import Path

from datagen.models.hub import require

GROUNDING_DINO = "IDEA-Research/grounding-dino-base"
SAM = "facebook/sam-vit-huge"
SAM2 = "facebook/sam2.1-hiera-large"
DINOV2 = "facebook/dinov2-base"

# Words the tiny BERT tokenizer knows whole; anything else splits into characters.
_WORDS = (
    "a an the of and with on in red green blue yellow white black wooden metal glass ceramic small large "
    "old new cat dog car lamp book plant vase bottle cup mug table chair bag hat shoe ball toy robot "
    "bicycle guitar apple teapot clock box sphere cube cylinder cone torus square circle triangle"
).split()


def bert_tokenizer():
    """A WordPiece BERT tokenizer (lower case) with a vocabulary written out in full, so every
    build gives the same ids: Grounding DINO's text side."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", ";", "?", "'", "-"]
    # Each piece once ("a" is a word and a letter): ids stay dense, 0 .. len - 1, within vocab_size.
    pieces = list(dict.fromkeys(pieces + sorted(set(_WORDS)) + list(letters) + ["##" + c for c in letters]))
    wp = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return BertTokenizerFast(tokenizer_object=wp, do_lower_case=True, model_max_length=256)


def build_grounding_dino(out: Path) -> None:
    torch = require("torch", "perception")
    tf = require("transformers", "perception")
    tok = bert_tokenizer()
    torch.manual_seed(0)
    backbone = tf.SwinConfig(
        image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
        out_features=["stage2", "stage3", "stage4"],
    )  # fmt: skip
    text = tf.BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=256, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    config = tf.GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        num_queries=20, num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=256,
    )  # fmt: skip
    tf.GroundingDinoForObjectDetection(config).save_pretrained(out)
    # Large enough that the 5th feature level (stride 64) is more than one pixel.
    images = tf.GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 192})
    tf.GroundingDinoProcessor(image_processor=images, tokenizer=tok).save_pretrained(out)


def build_sam(out: Path) -> None:
    torch = require("torch", "perception")
    tf = require("transformers", "perception")
    torch.manual_seed(0)
    size, patch = 64, 16
    config = tf.SamConfig(
        vision_config=tf.SamVisionConfig(
            hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=size,
            patch_size=patch, global_attn_indexes=[1], window_size=2, mlp_dim=64, num_pos_feats=8,
        ),
        prompt_encoder_config=tf.SamPromptEncoderConfig(
            hidden_size=16, image_size=size, patch_size=patch, mask_input_channels=4,
        ),
        mask_decoder_config=tf.SamMaskDecoderConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16,
        ),
    )  # fmt: skip
    tf.SamModel(config).save_pretrained(out)
    images = tf.SamImageProcessor(size={"longest_edge": size}, pad_size={"height": size, "width": size})
    tf.SamProcessor(image_processor=images).save_pretrained(out)


def build_dinov2(out: Path) -> None:
    torch = require("torch", "perception")
    tf = require("transformers", "perception")
    torch.manual_seed(0)
    config = tf.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=56
    )
    tf.Dinov2Model(config).save_pretrained(out)
    tf.BitImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 56, "width": 56}, do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(out)  # fmt: skip


def build_sam2(out: Path) -> None:
    torch = require("torch", "perception")
    tf = require("transformers", "perception")
    torch.manual_seed(0)
    size = 128
    # Hiera: a stage's first block pools queries, so the global-attention block is the second
    # block of stage 3 (index 3).
    backbone = tf.Sam2HieraDetConfig(
        hidden_size=16, num_attention_heads=1, image_size=[size, size], blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2],
    )  # fmt: skip
    vision = tf.Sam2VisionConfig(
        backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[size // 4, size // 4], [size // 8, size // 8], [size // 16, size // 16]], fpn_hidden_size=32,
    )  # fmt: skip
    config = tf.Sam2Config(
        vision_config=vision,
        prompt_encoder_config=tf.Sam2PromptEncoderConfig(hidden_size=32, image_size=size, patch_size=16),
        mask_decoder_config=tf.Sam2MaskDecoderConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, iou_head_hidden_dim=32
        ),
    )
    tf.Sam2Model(config).save_pretrained(out)
    tf.Sam2Processor(image_processor=tf.Sam2ImageProcessor(size={"height": size, "width": size})).save_pretrained(out)
