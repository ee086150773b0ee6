"""The three `ModuleUtilsMixin` helpers groundingdino-py's BERT wrapper still calls.

groundingdino-py 0.4.0 (`bertwarper.BertModelWarper`) copies `get_extended_attention_mask`,
`invert_attention_mask` and `get_head_mask` off the BERT it loads; transformers 5 removed them,
so building the model fails with an AttributeError. These functions reproduce the transformers
4.x semantics (additive masks: 0 where attended, the dtype's most negative value where masked)
and `apply()` attaches them to the text-encoder classes that lack them. transformers 5's BERT
encoder takes a ready 4D additive mask and ignores `head_mask`, so the wrapper's calls line up.
"""

from __future__ import annotations

from typing import Any

# The classes groundingdino's `get_pretrained_language_model` can return.
TEXT_ENCODER_CLASSES = ("BertModel", "RobertaModel")


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


def apply() -> list[str]:
    """Attach each missing helper to the text-encoder classes; returns what was added.

    Idempotent, and a no-op under transformers 4, whose classes still have their own.
    """
    import transformers

    added = []
    for cls_name in TEXT_ENCODER_CLASSES:
        cls = getattr(transformers, cls_name)
        for name, fn in HELPERS.items():
            if not hasattr(cls, name):
                setattr(cls, name, fn)
                added.append(f"{cls_name}.{name}")
    return added
