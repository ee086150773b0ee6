"""What groundingdino-py's BERT wrapper needs from transformers 5, added where it is missing.

groundingdino-py 0.4.0 (`bertwarper.BertModelWarper`) drives the BERT it loads by hand:
- it copies `get_extended_attention_mask`, `invert_attention_mask` and `get_head_mask` off the
  model; transformers 5 removed them, so building the model fails with an AttributeError.
  These functions reproduce the transformers 4.x semantics (additive masks: 0 where attended,
  the dtype's most negative value where masked). transformers 5's BERT encoder takes a ready
  4D additive mask and ignores `head_mask`, so the wrapper's calls line up;
- it calls the embeddings with `past_key_values_length=`, which transformers 5.24 renamed
  `cache_length`: where the installed class takes the new name, its `forward` is wrapped to
  take the old one too. The choice is made by reading the installed signature, never a version.

`apply()` does both, once. A shape it does not know (an embeddings call under yet another
name, an encoder that refuses the wrapper's keywords) is one line naming transformers' version
(`third_party.IncompatibleDependency`), raised before the model is built.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

from datagen.models.third_party import incompatible

# The classes groundingdino's `get_pretrained_language_model` can return, with the module that
# holds their embeddings and encoder classes.
TEXT_ENCODER_CLASSES = ("BertModel", "RobertaModel")
PARTS = {
    "BertModel": ("transformers.models.bert.modeling_bert", "BertEmbeddings", "BertEncoder"),
    "RobertaModel": ("transformers.models.roberta.modeling_roberta", "RobertaEmbeddings", "RobertaEncoder"),
}
# The keyword groundingdino's wrapper passes to the embeddings, and the names transformers has
# given that argument since.
WARPER_KEYWORD = "past_key_values_length"
RENAMED_KEYWORDS = ("cache_length",)
# What the wrapper passes to the encoder by keyword (bertwarper.py, `self.encoder(...)`).
ENCODER_KEYWORDS = (
    "attention_mask", "head_mask", "encoder_hidden_states", "encoder_attention_mask", "past_key_values",
    "use_cache", "output_attentions", "output_hidden_states", "return_dict",
)
ADAPTED = "_datagen_takes_past_key_values_length"


def _additive(mask: Any, dtype: Any) -> Any:
    """1 (attend) -> 0, 0 (masked) -> the dtype's minimum, as transformers 4 did."""
    import torch

    return (1.0 - mask.to(dtype=dtype)) * torch.finfo(dtype).min


def _decoder_mask(input_shape: tuple[int, ...], attention_mask: Any) -> Any:
    """Causal mask times padding mask, (batch, 1, seq, seq + past) with 1 where attended."""
    import torch

    batch_size, seq_length = input_shape
    seq_ids = torch.arange(seq_length, device=attention_mask.device)
    causal = (seq_ids[None, None, :].repeat(batch_size, seq_length, 1) <= seq_ids[None, :, None]).to(attention_mask.dtype)
    past = attention_mask.shape[1] - causal.shape[1]
    if past > 0:  # cached keys come first and are always visible
        ones = torch.ones((batch_size, seq_length, past), device=attention_mask.device, dtype=causal.dtype)
        causal = torch.cat([ones, causal], dim=-1)
    return causal[:, None, :, :] * attention_mask[:, None, None, :]


def get_extended_attention_mask(self, attention_mask, input_shape, device=None, dtype=None):
    """A (batch, seq) or (batch, seq, seq) 0/1 mask as an additive (batch, 1, ., seq) mask.

    `device` is accepted for the old signature (groundingdino passes it) and not needed: the
    mask's own device is used.
    """
    dtype = dtype or self.dtype
    if attention_mask.dim() == 3:
        extended = attention_mask[:, None, :, :]
    elif attention_mask.dim() == 2:
        if self.config.is_decoder:
            extended = _decoder_mask(tuple(input_shape), attention_mask)
        else:
            extended = attention_mask[:, None, None, :]
    else:
        raise ValueError(f"Wrong shape for input_ids (shape {input_shape}) or attention_mask (shape {attention_mask.shape})")
    return _additive(extended, dtype)


def invert_attention_mask(self, encoder_attention_mask):
    """A 2D or 3D 0/1 cross-attention mask as an additive 4D mask in the model's dtype."""
    if encoder_attention_mask.dim() == 3:
        extended = encoder_attention_mask[:, None, :, :]
    elif encoder_attention_mask.dim() == 2:
        extended = encoder_attention_mask[:, None, None, :]
    else:
        raise ValueError(f"Wrong shape for encoder_attention_mask (shape {encoder_attention_mask.shape})")
    return _additive(extended, self.dtype)


def get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
    """None -> [None] * layers; a (heads,) or (layers, heads) mask -> (layers, 1, heads, 1, 1)."""
    if head_mask is None:
        return [None] * num_hidden_layers
    if head_mask.dim() == 1:
        head_mask = head_mask[None, None, :, None, None].expand(num_hidden_layers, -1, -1, -1, -1)
    elif head_mask.dim() == 2:
        head_mask = head_mask[:, None, :, None, None]  # one row per layer
    if head_mask.dim() != 5:
        raise ValueError(f"head_mask must have 1, 2 or 5 dimensions, got {head_mask.dim()}")
    head_mask = head_mask.to(dtype=self.dtype)
    return head_mask.unsqueeze(-1) if is_attention_chunked else head_mask


HELPERS = {
    "get_extended_attention_mask": get_extended_attention_mask,
    "invert_attention_mask": invert_attention_mask,
    "get_head_mask": get_head_mask,
}


def _takes_any_keyword(params: Any) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def embeddings_keyword(cls: type) -> str | None:
    """The name under which `cls.forward` takes the wrapper's past length; None when it takes
    `past_key_values_length` as it is (transformers 4 and 5 before 5.24)."""
    params = inspect.signature(cls.forward).parameters
    if WARPER_KEYWORD in params or _takes_any_keyword(params):
        return None
    for name in RENAMED_KEYWORDS:
        if name in params:
            return name
    raise incompatible(
        "transformers", "gsam",
        f"{cls.__name__}.forward takes neither {WARPER_KEYWORD} (groundingdino-py's call) nor {' or '.join(RENAMED_KEYWORDS)}",
    )


def adapt_embeddings(cls: type) -> bool:
    """Let `cls.forward` take `past_key_values_length` under its new name; True if it was wrapped."""
    if getattr(cls.forward, ADAPTED, False):
        return False
    name = embeddings_keyword(cls)
    if name is None:
        return False
    original = cls.forward

    @functools.wraps(original)
    def forward(self, *args, past_key_values_length: int = 0, **kwargs):
        kwargs.setdefault(name, past_key_values_length)
        return original(self, *args, **kwargs)

    setattr(forward, ADAPTED, True)
    cls.forward = forward
    return True


def check_encoder(cls: type) -> None:
    """The encoder must take every keyword the wrapper passes (by name or through **kwargs)."""
    params = inspect.signature(cls.forward).parameters
    if _takes_any_keyword(params):
        return
    missing = [k for k in ENCODER_KEYWORDS if k not in params]
    if missing:
        raise incompatible("transformers", "gsam", f"{cls.__name__}.forward no longer takes {', '.join(missing)} (groundingdino-py's call)")


def _parts(cls_name: str) -> tuple[type, type, type]:
    module_name, embeddings, encoder = PARTS[cls_name]
    try:
        import transformers

        module = importlib.import_module(module_name)
        return getattr(transformers, cls_name), getattr(module, embeddings), getattr(module, encoder)
    except (ImportError, AttributeError) as e:
        raise incompatible("transformers", "gsam", f"{cls_name}'s parts are not where groundingdino-py finds them ({e})") from None


def apply() -> list[str]:
    """Make the text-encoder classes take groundingdino's calls; returns what was added.

    Idempotent, and a no-op under transformers 4, whose classes still have all of it.
    """
    added = []
    for cls_name in TEXT_ENCODER_CLASSES:
        cls, embeddings, encoder = _parts(cls_name)
        check_encoder(encoder)
        if adapt_embeddings(embeddings):
            added.append(f"{embeddings.__name__}.forward({WARPER_KEYWORD})")
        for name, fn in HELPERS.items():
            if not hasattr(cls, name):
                setattr(cls, name, fn)
                added.append(f"{cls_name}.{name}")
    return added
