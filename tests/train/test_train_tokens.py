"""SIGMA-GEN's token layout on FLUX.1 Kontext, checked by hand and against diffusers' own
packing, and a LoRA step of the tiny Kontext transformer on it."""

from __future__ import annotations

import pytest
import torch

from datagen.train.tokens import flow_loss, noisy, pack, positions, sequence, unpack


def test_pack_takes_2x2_patches_row_major_by_hand():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    tokens = pack(x)
    assert tokens.shape == (1, 4, 8)
    # Token 0 is the top-left 2x2 patch: channel 0's (0,0),(0,1),(1,0),(1,1), then channel 1's.
    assert tokens[0, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]
    # Token 1 is the patch to its right; token 2 starts the second patch row.
    assert tokens[0, 1, :4].tolist() == [2, 3, 6, 7] and tokens[0, 2, :4].tolist() == [8, 9, 12, 13]
    assert torch.equal(unpack(tokens, 4, 4), x)
    with pytest.raises(ValueError, match="even"):
        pack(torch.zeros(1, 2, 3, 4))


def test_pack_and_positions_match_diffusers_kontext():
    from diffusers import FluxKontextPipeline

    x = torch.randn(2, 4, 6, 8)
    assert torch.equal(pack(x), FluxKontextPipeline._pack_latents(x, 2, 4, 6, 8))
    ref = FluxKontextPipeline._prepare_latent_image_ids(1, 3, 4, "cpu", torch.float32)
    assert torch.equal(positions(6, 8), ref)


def test_sequence_layout_ids_and_n_x():
    x_t, z_c = torch.randn(1, 4, 4, 6), torch.randn(1, 4, 4, 6)
    z_s = torch.randn(1, 4, 8, 2)  # two identities stacked vertically, each 4x2 latents
    hidden, ids, n_x = sequence(x_t, z_s, z_c)
    n_s = 4 * 1
    assert n_x == 2 * 3 and hidden.shape == (1, n_x + n_s + n_x, 16)
    assert torch.equal(hidden[:, :n_x], pack(x_t)) and torch.equal(hidden[:, n_x : n_x + n_s], pack(z_s))
    assert torch.equal(hidden[:, n_x + n_s :], pack(z_c))
    x_ids, s_ids, c_ids = ids[:n_x], ids[n_x : n_x + n_s], ids[n_x + n_s :]
    assert torch.equal(c_ids, x_ids)  # each control token sits on the pixel it controls
    assert (x_ids[:, 0] == 0).all() and (s_ids[:, 0] == 1).all()  # I_S: frame 1, like Kontext's context
    assert s_ids[:, 1:].tolist() == [[0, 0], [1, 0], [2, 0], [3, 0]]
    assert x_ids[:, 1:].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    with pytest.raises(ValueError, match="control latents"):
        sequence(x_t, z_s, torch.randn(1, 4, 2, 6))


def test_flow_loss_reads_the_target_tokens_only():
    x0, noise = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    n_x = 4
    target = pack(noise - x0)
    pred = torch.cat([target, torch.randn(2, 7, 16)], dim=1)
    assert flow_loss(pred, x0, noise, n_x).item() == pytest.approx(0.0)
    pred2 = pred.clone()
    pred2[:, n_x:] += 100.0  # condition tokens are never targets
    assert flow_loss(pred2, x0, noise, n_x).item() == pytest.approx(0.0)
    pred2[:, 0] += 1.0
    assert flow_loss(pred2, x0, noise, n_x).item() == pytest.approx(16 / (4 * 16))  # 16 of 4x16 values off by 1
    sigma = torch.tensor([0.0, 1.0])
    xt = noisy(x0, noise, sigma)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], noise[1])


def test_a_lora_step_on_the_tiny_kontext_transformer(tmp_path):
    """The stock FluxTransformer2DModel takes the unified sequence; LoRA (peft) learns, the base
    stays frozen."""
    from peft import LoraConfig

    from datagen.models.tiny.build import build_flux_kontext
    from diffusers import FluxTransformer2DModel

    build_flux_kontext(tmp_path)
    model = FluxTransformer2DModel.from_pretrained(tmp_path / "transformer")
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights="gaussian"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    torch.manual_seed(0)
    x0, noise, z_s, z_c = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4), torch.randn(1, 4, 8, 4), torch.randn(1, 4, 4, 4)
    sigma = torch.tensor([0.7])
    hidden, ids, n_x = sequence(noisy(x0, noise, sigma), z_s, z_c)
    text = torch.randn(1, 3, model.config.joint_attention_dim)
    out = model(
        hidden_states=hidden, encoder_hidden_states=text, pooled_projections=torch.randn(1, model.config.pooled_projection_dim),
        timestep=sigma, img_ids=ids, txt_ids=torch.zeros(3, 3), guidance=torch.tensor([1.0]), return_dict=False,
    )[0]  # fmt: skip
    assert out.shape == hidden.shape
    loss = flow_loss(out, x0, noise, n_x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in trainable) and any(p.grad.abs().sum() > 0 for p in trainable)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
