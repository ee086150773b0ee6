"""The Kontext pipeline, LoRA and its saved file, on the tiny random-weight Kontext."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from datagen.errors import UserError
from datagen.models.tiny.build import FLUX_DEV, FLUX_KONTEXT, build_flux, build_flux_kontext
from datagen.train.model import LoraSpec, add_lora, encode_images, encode_prompts, load_kontext_pipeline, save_lora
from datagen.train.tokens import sequence


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-kontext")
    for model_id, build in ((FLUX_KONTEXT, build_flux_kontext), (FLUX_DEV, build_flux)):
        (root / model_id).mkdir(parents=True)
        build(root / model_id)
    return root


def _forward(transformer, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, z_s, z_c = (torch.randn(1, 4, *hw, generator=g) for hw in ((4, 4), (8, 4), (4, 4)))
    hidden, ids, _ = sequence(x, z_s, z_c)
    cfg = transformer.config
    with torch.no_grad():
        return transformer(
            hidden_states=hidden, encoder_hidden_states=torch.randn(1, 3, cfg.joint_attention_dim, generator=g),
            pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g), timestep=torch.tensor([0.5]),
            img_ids=ids, txt_ids=torch.zeros(3, 3), guidance=torch.tensor([1.0]), return_dict=False,
        )[0]  # fmt: skip


def test_only_a_kontext_pipeline_is_taken(models):
    with pytest.raises(UserError, match="a FluxPipeline, not a FLUX.1 Kontext pipeline"):
        load_kontext_pipeline(FLUX_DEV, str(models), "float32")
    with pytest.raises(UserError, match="cannot load model 'no/such'"):
        load_kontext_pipeline("no/such", str(models), "float32")


def test_bad_lora_specs_are_one_line(models):
    pipe = load_kontext_pipeline(FLUX_KONTEXT, str(models), "float32")
    with pytest.raises(UserError, match="lora.rank: 0: must be at least 1"):
        add_lora(pipe.transformer, LoraSpec(rank=0))
    with pytest.raises(UserError, match="lora.targets: no module named 'attn.nope'"):
        add_lora(pipe.transformer, LoraSpec(rank=2, targets=("attn.to_q", "attn.nope")))


def test_lora_trains_in_fp32_saves_alone_and_loads_into_the_pipeline(models, tmp_path):
    pipe = load_kontext_pipeline(FLUX_KONTEXT, str(models), "bfloat16")
    params = add_lora(pipe.transformer, LoraSpec(rank=4, alpha=4))
    names = [n for n, p in pipe.transformer.named_parameters() if p.requires_grad]
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert all(p.dtype == torch.float32 for p in params)
    assert all(p.dtype == torch.bfloat16 for n, p in pipe.transformer.named_parameters() if not p.requires_grad)
    # Pretend it trained: B starts at zero, so give it values.
    with torch.no_grad():
        for p in params:
            p.add_(0.05 * torch.randn_like(p))
    pipe.transformer.to(torch.float32)
    trained = _forward(pipe.transformer)

    path = save_lora(type(pipe), pipe.transformer, tmp_path / "lora")
    tensors = load_file(path)
    assert tensors and all("lora" in k for k in tensors)  # only LoRA tensors
    assert sum(t.numel() for t in tensors.values()) == sum(p.numel() for p in params)

    fresh = load_kontext_pipeline(FLUX_KONTEXT, str(models), "float32")
    base = _forward(fresh.transformer)
    fresh.load_lora_weights(tmp_path / "lora")
    loaded = _forward(fresh.transformer)
    assert not torch.allclose(base, trained, atol=1e-4)
    torch.testing.assert_close(loaded, trained, atol=2e-2, rtol=2e-2)  # the base was bf16 when trained


def test_encoders_give_the_shapes_the_token_layout_needs(models):
    pipe = load_kontext_pipeline(FLUX_KONTEXT, str(models), "float32")
    latents = encode_images(pipe.vae, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert latents.shape == (2, 4, 16, 16)  # the tiny VAE halves once
    embeds, pooled, text_ids = encode_prompts(pipe, ["Place these subjects in a garden", "two"], max_sequence_length=16)
    assert embeds.shape[:2] == (2, 16) and pooled.shape[0] == 2 and text_ids.shape == (16, 3)


def test_a_step_loss_is_finite_seeded_and_trains_only_the_lora(models):
    from datagen.train.step import Batch, step_loss

    pipe = load_kontext_pipeline(FLUX_KONTEXT, str(models), "float32")
    params = add_lora(pipe.transformer, LoraSpec(rank=4, alpha=4))
    g = torch.Generator().manual_seed(1)
    batch = Batch(
        target=torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, control=torch.rand(2, 3, 32, 32, generator=g) * 2 - 1,
        identities=torch.rand(2, 3, 64, 32, generator=g) * 2 - 1, prompts=["Place these subjects in a park", "two"],
    )  # fmt: skip
    loss = step_loss(pipe, batch, torch.Generator().manual_seed(7), guidance=1.0, max_sequence_length=16)
    again = step_loss(pipe, batch, torch.Generator().manual_seed(7), guidance=1.0, max_sequence_length=16)
    other = step_loss(pipe, batch, torch.Generator().manual_seed(8), guidance=1.0, max_sequence_length=16)
    assert torch.isfinite(loss) and loss.item() == again.item() != other.item()
    loss.backward()
    assert all(p.grad is not None for p in params)
    assert all(p.grad is None for p in pipe.transformer.parameters() if not p.requires_grad)
    assert all(p.grad is None for p in pipe.vae.parameters())


def test_generation_with_the_sigma_sequence_is_seeded_and_follows_the_lora(models, tmp_path):
    import numpy as np

    from datagen.train.generate import generate

    pipe = load_kontext_pipeline(FLUX_KONTEXT, str(models), "float32")
    rng = np.random.default_rng(0)
    control = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    identities = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
    kw = {"steps": 2, "max_sequence_length": 16}
    a = generate(pipe, "Place these subjects in a park", control, identities, seed=3, **kw)
    assert a.shape == (32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, generate(pipe, "Place these subjects in a park", control, identities, seed=3, **kw))
    assert not np.array_equal(a, generate(pipe, "Place these subjects in a park", control, identities, seed=4, **kw))
    # The identities are attended to: another stack changes the image.
    assert not np.array_equal(a, generate(pipe, "Place these subjects in a park", control, 255 - identities, seed=3, **kw))
    params = add_lora(pipe.transformer, LoraSpec(rank=4, alpha=4))
    with torch.no_grad():
        for p in params:
            p.add_(0.1 * torch.randn_like(p))
    save_lora(type(pipe), pipe.transformer, tmp_path / "lora")
    fresh = load_kontext_pipeline(FLUX_KONTEXT, str(models), "float32")
    fresh.load_lora_weights(tmp_path / "lora")
    assert not np.array_equal(a, generate(fresh, "Place these subjects in a park", control, identities, seed=3, **kw))
